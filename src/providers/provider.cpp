#include "providers/provider.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>

#include <mutex>

namespace strowger::providers {

Status CheckUsage(std::string_view provider, const Usage& usage) {
    auto check = [&](const char* field, int64_t count) -> Status {
        if (count >= 0 && count <= kMaxTokensPerCall) return OkStatus();
        return InternalError(std::string(provider) + ": usage reports " + field + " = " +
                             std::to_string(count) + " (expected an integer from 0 to " +
                             std::to_string(kMaxTokensPerCall) + ")");
    };
    STROWGER_TRY(check("input_tokens", usage.input_tokens));
    return check("output_tokens", usage.output_tokens);
}

std::optional<Result<Completion>> Provider::Start(CompletionRequest request, Deadline deadline,
                                                  const Executor& executor,
                                                  asio::cancellation_slot cancel,
                                                  CompletionHandler done) {
    // co_spawn never completes inline: its handler is posted when the coroutine did not
    // suspend.
    asio::co_spawn(executor, Complete(std::move(request), deadline),
                   asio::bind_cancellation_slot(
                       cancel, [done = std::move(done)](std::exception_ptr thrown,
                                                        Result<Completion> result) mutable {
                           if (thrown) result = InternalError("model call threw");
                           done(std::move(result));
                       }));
    return std::nullopt;
}

void ProviderRegistry::Register(std::string provider_name, Factory factory) {
    std::lock_guard lock(mutex_);
    factories_[std::move(provider_name)] = std::move(factory);
}

std::vector<std::string> ProviderRegistry::Names() const {
    std::vector<std::string> names;
    for (const auto& [name, factory] : factories_) names.push_back(name);
    return names;
}

Result<ResolvedModel> ProviderRegistry::Resolve(std::string_view spec, std::string_view base_dir) {
    auto colon = spec.find(':');
    if (colon == std::string_view::npos) {
        return InvalidArgumentError("model \"" + std::string(spec) + "\" must be provider:model");
    }
    std::string provider_name(spec.substr(0, colon));
    std::string_view model = spec.substr(colon + 1);
    std::string key = std::string(spec) + '\n' + std::string(base_dir);
    std::lock_guard lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    auto factory = factories_.find(provider_name);
    if (factory == factories_.end()) {
        return InvalidArgumentError("unknown provider \"" + provider_name + "\"");
    }
    auto resolved = factory->second(model, base_dir);
    if (!resolved) return resolved;
    resolved->provider_name = provider_name;
    cache_.emplace(std::move(key), *resolved);
    return resolved;
}

}  // namespace strowger::providers
