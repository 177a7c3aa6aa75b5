// Validation of the JSON arguments a model passes to a built-in tool. Every failure is
// kInvalidArgument with a message that names the tool and the field, written for the model to
// correct its next call ("read_file: \"path\" must be a string").
//
// Thread-safety: plain functions.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/result.hpp"

namespace strowger::tools::builtin {

class Arguments {
  public:
    // `text` must be a JSON object whose keys are all in `allowed`. An empty text is {}.
    static Result<Arguments> Parse(std::string_view tool, std::string_view text,
                                   std::initializer_list<std::string_view> allowed);

    Result<std::string> RequiredString(std::string_view field) const;
    Result<std::optional<std::string>> OptionalString(std::string_view field) const;
    // In [min, max]; nullopt when absent.
    Result<std::optional<int64_t>> OptionalInt(std::string_view field, int64_t min,
                                               int64_t max) const;
    // An object whose values are all strings; nullopt when absent.
    Result<std::optional<json::object>> OptionalStringMap(std::string_view field) const;

  private:
    Arguments(std::string tool, json::object object)
        : tool_(std::move(tool)), object_(std::move(object)) {}
    std::unexpected<Error> Invalid(std::string_view field, std::string_view problem) const;

    std::string tool_;
    json::object object_;
};

}  // namespace strowger::tools::builtin
