#include "core/log.hpp"

#include <re2/re2.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "core/strings.hpp"

extern char** environ;

namespace strowger {
namespace {

struct Redactor {
    std::shared_mutex mutex;
    std::vector<std::string> secrets;            // GUARDED_BY(mutex)
    std::vector<std::unique_ptr<RE2>> patterns;  // GUARDED_BY(mutex); RE2 matches are const
    std::atomic<bool> any{false};
};

Redactor& GetRedactor() {
    static Redactor redactor;
    return redactor;
}

class RedactingSinkImpl final : public spdlog::sinks::sink {
  public:
    explicit RedactingSinkImpl(std::shared_ptr<spdlog::sinks::sink> inner)
        : inner_(std::move(inner)) {}

    void log(const spdlog::details::log_msg& msg) override {
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (!ContainsSecret(payload)) {
            inner_->log(msg);
            return;
        }
        const std::string redacted = Redact(payload);
        spdlog::details::log_msg copy = msg;
        copy.payload = spdlog::string_view_t(redacted.data(), redacted.size());
        inner_->log(copy);
    }
    void flush() override { inner_->flush(); }
    void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
    void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
        inner_->set_formatter(std::move(formatter));
    }

  private:
    std::shared_ptr<spdlog::sinks::sink> inner_;
};

}  // namespace

void InitLogging(std::string_view level) {
    auto sink = RedactingSink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    auto logger = std::make_shared<spdlog::logger>("strowger", std::move(sink));
    logger->set_pattern("%^%Y-%m-%dT%H:%M:%S.%e %l%$ %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

std::shared_ptr<spdlog::sinks::sink> RedactingSink(std::shared_ptr<spdlog::sinks::sink> inner) {
    return std::make_shared<RedactingSinkImpl>(std::move(inner));
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
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
    if (!re->ok()) return false;
    auto& r = GetRedactor();
    std::unique_lock lock(r.mutex);
    r.patterns.push_back(std::move(re));
    r.any = true;
    return true;
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
        RE2::GlobalReplace(&out, *pattern, "[REDACTED]");
    }
    return out;
}

bool ContainsSecret(std::string_view text) {
    if (!HaveSecrets()) return false;
    auto& r = GetRedactor();
    std::shared_lock lock(r.mutex);
    for (const auto& secret : r.secrets) {
        if (text.find(secret) != std::string_view::npos) return true;
    }
    const re2::StringPiece piece(text.data(), text.size());
    for (const auto& pattern : r.patterns) {
        if (RE2::PartialMatch(piece, *pattern)) return true;
    }
    return false;
}

}  // namespace strowger
