#include "tools/tool.hpp"

namespace strowger::tools {

std::string_view SafetyClassName(SafetyClass safety) {
    switch (safety) {
        case SafetyClass::kReadOnly:
            return "read_only";
        case SafetyClass::kIdempotentWrite:
            return "idempotent_write";
        case SafetyClass::kDestructive:
            return "destructive";
    }
    return "destructive";
}

std::optional<SafetyClass> SafetyClassFromName(std::string_view name) {
    if (name == "read_only") return SafetyClass::kReadOnly;
    if (name == "idempotent_write") return SafetyClass::kIdempotentWrite;
    if (name == "destructive") return SafetyClass::kDestructive;
    return std::nullopt;
}

void ToolRegistry::Register(std::shared_ptr<Tool> tool) {
    std::lock_guard lock(mutex_);
    tools_[tool->spec().name] = std::move(tool);
}

std::shared_ptr<Tool> ToolRegistry::Find(std::string_view name) const {
    std::lock_guard lock(mutex_);
    auto it = tools_.find(name);
    return it == tools_.end() ? nullptr : it->second;
}

std::vector<std::string> ToolRegistry::Names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> names;
    for (const auto& [name, tool] : tools_) names.push_back(name);
    return names;
}

const std::vector<std::string>& BuiltinToolNames() {
    static const std::vector<std::string> names = {"shell",    "read_file", "write_file",
                                                   "list_dir", "grep",      "http_request"};
    return names;
}

const std::vector<std::string>& MemoryToolNames() {
    static const std::vector<std::string> names = {"memory_get", "memory_set", "memory_list",
                                                   "memory_delete"};
    return names;
}

}  // namespace strowger::tools
