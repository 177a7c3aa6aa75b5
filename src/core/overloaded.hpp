// `std::visit(Overloaded{[](const A&) {...}, [](const B&) {...}}, variant)`: one visitor from
// several lambdas.
#pragma once

namespace strowger {

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace strowger
