#include "automation/memory.hpp"

#include <algorithm>
#include <cctype>

#include "core/strings.hpp"

namespace strowger::automation {
namespace {

// Parses a tool's JSON arguments: an object with only `allowed` keys.
Result<json::object> ToolArguments(std::string_view tool, std::string_view text,
                                   std::initializer_list<std::string_view> allowed) {
    if (Trim(text).empty()) return json::object{};
    auto parsed = ParseJson(text);
    if (!parsed || !parsed->is_object()) {
        return InvalidArgumentError(std::string(tool) + ": the arguments must be a JSON object");
    }
    for (const auto& [name, value] : parsed->as_object()) {
        bool known = false;
        for (auto a : allowed) known = known || a == name;
        if (!known) {
            return InvalidArgumentError(std::string(tool) + ": unknown argument \"" +
                                        std::string(name) + "\"");
        }
    }
    return std::move(parsed->as_object());
}

Result<std::string> StringArgument(std::string_view tool, const json::object& args,
                                   std::string_view field, std::string fallback, bool required) {
    auto it = args.find(field);
    if (it == args.end()) {
        if (required) {
            return InvalidArgumentError(std::string(tool) + ": \"" + std::string(field) +
                                        "\" is required");
        }
        return fallback;
    }
    if (!it->value().is_string()) {
        return InvalidArgumentError(std::string(tool) + ": \"" + std::string(field) +
                                    "\" must be a string");
    }
    return std::string(it->value().as_string());
}

// The namespace argument, "run" resolved to this run's.
Result<std::string> NamespaceArgument(std::string_view tool, const json::object& args,
                                      const tools::ToolContext& context) {
    STROWGER_ASSIGN_OR_RETURN(std::string ns,
                              StringArgument(tool, args, "namespace", "global", false));
    if (ns == "run") ns = "run:" + context.run_id;
    if (auto ok = CheckMemoryNamespace(ns); !ok) {
        return InvalidArgumentError(std::string(tool) + ": " + ok.error().message());
    }
    return ns;
}

constexpr std::string_view kNamespaceSchema =
    R"("namespace":{"type":"string","description":"global (default), agent:<name>, run:<id>, or run for this run's own"})";

class MemoryTool : public tools::Tool {
  public:
    MemoryTool(std::string name, std::string description, std::string schema,
               tools::SafetyClass safety, std::shared_ptr<MemoryService> memory, Clock& clock)
        : spec_{std::move(name), std::move(description), std::move(schema)},
          safety_(safety),
          memory_(std::move(memory)),
          clock_(clock) {}
    const providers::ToolSpec& spec() const override { return spec_; }
    tools::SafetyClass safety() const override { return safety_; }

    Awaitable<Result<tools::ToolResult>> Call(std::string arguments,
                                              tools::ToolContext context) override {
        const std::string& tool = spec_.name;
        if (tool == "memory_list") {
            STROWGER_CO_ASSIGN_OR_RETURN(
                auto args, ToolArguments(tool, arguments, {"namespace", "prefix", "limit"}));
            STROWGER_CO_ASSIGN_OR_RETURN(auto ns, NamespaceArgument(tool, args, context));
            STROWGER_CO_ASSIGN_OR_RETURN(auto prefix,
                                         StringArgument(tool, args, "prefix", "", false));
            int64_t limit = std::clamp<int64_t>(JsonInt(args, "limit", 100), 1, 1000);
            STROWGER_CO_ASSIGN_OR_RETURN(auto entries, co_await memory_->List(ns, prefix, limit));
            json::object out;
            out["namespace"] = ns;
            json::array keys;
            for (const auto& e : entries) {
                json::object entry;
                entry["key"] = e.key;
                auto value = ParseJson(e.value);
                entry["value"] = value ? *value : json::value(e.value);
                keys.push_back(std::move(entry));
            }
            out["entries"] = std::move(keys);
            co_return tools::ToolResult{CompactJson(out), false};
        }
        auto parsed = tool == "memory_set"
                          ? ToolArguments(tool, arguments, {"namespace", "key", "value"})
                          : ToolArguments(tool, arguments, {"namespace", "key"});
        STROWGER_CO_ASSIGN_OR_RETURN(auto args, std::move(parsed));
        STROWGER_CO_ASSIGN_OR_RETURN(auto ns, NamespaceArgument(tool, args, context));
        STROWGER_CO_ASSIGN_OR_RETURN(auto key, StringArgument(tool, args, "key", "", true));
        if (auto ok = CheckMemoryKey(key); !ok) {
            co_return InvalidArgumentError(tool + ": " + ok.error().message());
        }
        if (tool == "memory_get") {
            auto entry = co_await memory_->Get(ns, key);
            if (!entry) {
                if (entry.error().code() == ErrorCode::kNotFound) {
                    co_return tools::ToolResult{"not found: no key \"" + key + "\" in " + ns,
                                                false};
                }
                co_return std::unexpected(entry.error());
            }
            co_return tools::ToolResult{entry->value, false};
        }
        if (tool == "memory_set") {
            auto value = args.find("value");
            if (value == args.end())
                co_return InvalidArgumentError(tool + ": \"value\" is required");
            STROWGER_CO_ASSIGN_OR_RETURN(
                auto change,
                co_await memory_->Set(ns, key, value->value(), clock_.Now(), context.run_id));
            co_return tools::ToolResult{"ok: " + change.kind + " " + ns + " " + key, false};
        }
        auto deleted = co_await memory_->Delete(ns, key, context.run_id);
        if (!deleted && deleted.error().code() != ErrorCode::kNotFound) {
            co_return std::unexpected(deleted.error());
        }
        co_return tools::ToolResult{
            deleted ? "ok: deleted " + ns + " " + key : "ok: no key \"" + key + "\" in " + ns,
            false};
    }

  private:
    providers::ToolSpec spec_;
    tools::SafetyClass safety_;
    std::shared_ptr<MemoryService> memory_;
    Clock& clock_;
};

std::string Capitalized(std::string_view kind) {
    std::string out(kind);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return out;
}

}  // namespace

Status CheckMemoryNamespace(std::string_view ns) {
    if (ns == "global") return OkStatus();
    for (std::string_view prefix : {"agent:", "run:"}) {
        if (StartsWith(ns, prefix) && ns.size() > prefix.size() && ns.size() <= 256 &&
            IsValidUtf8(ns) &&
            ns.find_first_of(std::string_view("\0\n\r\t/", 5)) == std::string_view::npos) {
            return OkStatus();
        }
    }
    return InvalidArgumentError("namespace: expected global, agent:<name> or run:<run_id>, got \"" +
                                CapForMessage(ns) + "\"");
}

Status CheckMemoryKey(std::string_view key) {
    if (key.empty() || key.size() > kMaxMemoryKeyBytes || !IsValidUtf8(key)) {
        return InvalidArgumentError("key: expected 1 to 256 bytes of UTF-8");
    }
    for (unsigned char c : key) {
        if (c < 0x20 || c == 0x7f)
            return InvalidArgumentError("key: control characters are not allowed");
    }
    return OkStatus();
}

BusEvent MemoryEvent(const MemoryUpdate& update) {
    BusEvent event;
    event.kind = EventKind::kMemory;
    event.type = "memory_update";
    event.key = update.key;
    event.run_id = update.run_id;
    event.subject = update.name_space + "/" + update.key;
    std::string where;
    if (StartsWith(update.name_space, "agent:")) {
        where = "for agent " + update.name_space.substr(6);
    } else if (StartsWith(update.name_space, "run:")) {
        where = "for run " + update.name_space.substr(4);
    } else {
        where = "in namespace global";
    }
    event.description =
        "Memory " + Capitalized(update.kind) + " on key '" + update.key + "' " + where;
    return event;
}

Status MemoryService::Ready() const {
    if (!store_) return FailedPreconditionError("memory: no store is open");
    return OkStatus();
}

Awaitable<Result<store::MemoryEntry>> MemoryService::Get(std::string ns, std::string key) {
    STROWGER_CO_TRY(Ready());
    STROWGER_CO_TRY(CheckMemoryNamespace(ns));
    STROWGER_CO_TRY(CheckMemoryKey(key));
    co_return co_await store_->GetMemory(std::move(ns), std::move(key));
}

Awaitable<Result<std::vector<store::MemoryEntry>>> MemoryService::List(std::string ns,
                                                                       std::string prefix,
                                                                       int64_t limit) {
    STROWGER_CO_TRY(Ready());
    STROWGER_CO_TRY(CheckMemoryNamespace(ns));
    co_return co_await store_->ListMemory(std::move(ns), std::move(prefix), limit);
}

Awaitable<Result<store::MemoryChange>> MemoryService::Set(std::string ns, std::string key,
                                                          json::value value, SystemTime now,
                                                          std::string run_id) {
    STROWGER_CO_TRY(Ready());
    STROWGER_CO_TRY(CheckMemoryNamespace(ns));
    STROWGER_CO_TRY(CheckMemoryKey(key));
    STROWGER_CO_ASSIGN_OR_RETURN(std::string text, CanonicalJson(value));
    if (text.size() > kMaxMemoryValueBytes) {
        co_return InvalidArgumentError("value: at most 64 KiB of JSON, got " +
                                       std::to_string(text.size()) + " bytes");
    }
    store::MemoryEntry entry{ns, key, text, now};
    STROWGER_CO_ASSIGN_OR_RETURN(auto change, co_await store_->PutMemory(std::move(entry)));
    if (change.kind != "unchanged" && listener_) {
        listener_(MemoryUpdate{ns, key, change.kind, text, run_id});
    }
    co_return change;
}

Awaitable<Result<store::MemoryChange>> MemoryService::Delete(std::string ns, std::string key,
                                                             std::string run_id) {
    STROWGER_CO_TRY(Ready());
    STROWGER_CO_TRY(CheckMemoryNamespace(ns));
    STROWGER_CO_TRY(CheckMemoryKey(key));
    STROWGER_CO_ASSIGN_OR_RETURN(auto change, co_await store_->DeleteMemory(ns, key));
    if (listener_) listener_(MemoryUpdate{ns, key, "deleted", "", run_id});
    co_return change;
}

void RegisterMemoryTools(tools::ToolRegistry& registry, std::shared_ptr<MemoryService> memory,
                         Clock& clock) {
    const std::string ns(kNamespaceSchema);
    const std::string key = R"j("key":{"type":"string","description":"the key, 1 to 256 bytes"})j";
    registry.Register(std::make_shared<MemoryTool>(
        "memory_get", "Reads a key of the durable agent memory.",
        R"({"type":"object","properties":{)" + ns + "," + key + R"(},"required":["key"]})",
        tools::SafetyClass::kReadOnly, memory, clock));
    registry.Register(std::make_shared<MemoryTool>(
        "memory_set", "Sets a key of the durable agent memory to a JSON value.",
        R"({"type":"object","properties":{)" + ns + "," + key +
            R"(,"value":{"description":"any JSON value"}},"required":["key","value"]})",
        tools::SafetyClass::kIdempotentWrite, memory, clock));
    registry.Register(std::make_shared<MemoryTool>(
        "memory_list", "Lists the keys of a namespace of the durable agent memory.",
        R"({"type":"object","properties":{)" + ns +
            R"(,"prefix":{"type":"string"},"limit":{"type":"integer","minimum":1,"maximum":1000}}})",
        tools::SafetyClass::kReadOnly, memory, clock));
    registry.Register(std::make_shared<MemoryTool>(
        "memory_delete", "Deletes a key of the durable agent memory.",
        R"({"type":"object","properties":{)" + ns + "," + key + R"(},"required":["key"]})",
        tools::SafetyClass::kIdempotentWrite, memory, clock));
}

}  // namespace strowger::automation
