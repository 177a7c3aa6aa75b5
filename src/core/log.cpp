#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <mutex>
#include <regex>
#include <shared_mutex>
#include <vector>

#include "core/strings.hpp"

extern char** environ;

namespace strowger {
namespace {

struct Redactor {
    std::shared_mutex mutex;
    std::vector<std::string> secrets;  // GUARDED_BY(mutex)
    std::vector<std::regex> patterns;  // GUARDED_BY(mutex)
    std::atomic<bool> any{false};
};

Redactor& GetRedactor() {
    static Redactor redactor;
    return redactor;
}

}  // namespace

void InitLogging(std::string_view level) {
    auto logger = spdlog::stderr_color_mt("strowger");
    logger->set_pattern("%^%Y-%m-%dT%H:%M:%S.%e %l%$ %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

void RegisterSecret(std::string_view secret) {
    if (secret.size() < 6) return;
    auto& r = GetRedactor();
    std::unique_lock lock(r.mutex);
    for (const auto& s : r.secrets) {
        if (s == secret) return;
    }
    r.secrets.emplace_back(secret);
    r.any = true;
}

bool RegisterSecretPattern(std::string_view pattern) {
    try {
        std::regex re{std::string(pattern)};
        auto& r = GetRedactor();
        std::unique_lock lock(r.mutex);
        r.patterns.push_back(std::move(re));
        r.any = true;
        return true;
    } catch (const std::regex_error&) {
        return false;
    }
}

void RegisterEnvironmentSecrets() {
    for (char** env = environ; env && *env; ++env) {
        std::string_view entry(*env);
        auto eq = entry.find('=');
        if (eq == std::string_view::npos) continue;
        std::string name = AsciiLower(entry.substr(0, eq));
        if (EndsWith(name, "_key") || EndsWith(name, "_token") || EndsWith(name, "_secret") ||
            name.find("password") != std::string::npos || EndsWith(name, "api_key")) {
            RegisterSecret(entry.substr(eq + 1));
        }
    }
}

bool HaveSecrets() {
    return GetRedactor().any.load(std::memory_order_relaxed);
}

std::string Redact(std::string_view text) {
    std::string out(text);
    if (!HaveSecrets()) return out;
    auto& r = GetRedactor();
    std::shared_lock lock(r.mutex);
    for (const auto& secret : r.secrets) {
        size_t pos = 0;
        while ((pos = out.find(secret, pos)) != std::string::npos) {
            out.replace(pos, secret.size(), "[REDACTED]");
            pos += 10;
        }
    }
    for (const auto& pattern : r.patterns) {
        out = std::regex_replace(out, pattern, "[REDACTED]");
    }
    return out;
}

}  // namespace strowger
