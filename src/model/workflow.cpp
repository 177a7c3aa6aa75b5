#include "model/workflow.hpp"

#include <functional>

namespace strowger::model {

std::string_view StepModeName(StepMode mode) {
    switch (mode) {
        case StepMode::kSequential:
            return "sequential";
        case StepMode::kFanOut:
            return "fan_out";
        case StepMode::kCollect:
            return "collect";
        case StepMode::kConditional:
            return "conditional";
        case StepMode::kLoop:
            return "loop";
    }
    return "sequential";
}

std::string_view ErrorModeName(ErrorMode mode) {
    switch (mode) {
        case ErrorMode::kFail:
            return "fail";
        case ErrorMode::kSkip:
            return "skip";
        case ErrorMode::kRetry:
            return "retry";
    }
    return "fail";
}

std::string_view BackoffKindName(BackoffKind kind) {
    switch (kind) {
        case BackoffKind::kConstant:
            return "constant";
        case BackoffKind::kLinear:
            return "linear";
        case BackoffKind::kExponential:
            return "exponential";
    }
    return "exponential";
}

std::string_view OnErrorName(OnError on_error) {
    switch (on_error) {
        case OnError::kFail:
            return "fail";
        case OnError::kContinue:
            return "continue";
        case OnError::kSkip:
            return "skip";
        case OnError::kFallback:
            return "fallback";
        case OnError::kEmitSignal:
            return "emit_signal";
    }
    return "fail";
}

size_t FieldPositions::SlotOf(std::string_view path) const {
    size_t mask = slots_.size() - 1;
    size_t i = std::hash<std::string_view>()(path) & mask;
    while (true) {
        const Slot& slot = slots_[i];
        if (slot.path_size == kEmpty ||
            std::string_view(paths_).substr(slot.path_begin, slot.path_size) == path) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

void FieldPositions::Grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : old.size() * 2, Slot{});
    for (const Slot& slot : old) {
        if (slot.path_size == kEmpty) continue;
        slots_[SlotOf(std::string_view(paths_).substr(slot.path_begin, slot.path_size))] = slot;
    }
}

void FieldPositions::Record(std::string_view path, const SourcePos& pos) {
    if (2 * (used_ + 1) > slots_.size()) Grow();
    Slot& slot = slots_[SlotOf(path)];
    if (slot.path_size != kEmpty) return;
    // Paths and positions past 4 GiB of paths are not recorded (diagnostics fall back to a
    // parent's position, or the file's).
    if (paths_.size() + path.size() >= kEmpty) return;
    size_t file = files_.size();
    for (size_t f = files_.size(); f-- > 0;) {
        if (files_[f] == pos.file) {
            file = f;
            break;
        }
    }
    if (file == files_.size()) files_.push_back(pos.file);
    slot.path_begin = static_cast<uint32_t>(paths_.size());
    slot.path_size = static_cast<uint32_t>(path.size());
    slot.file = static_cast<uint32_t>(file);
    slot.line = pos.line;
    slot.column = pos.column;
    paths_ += path;
    ++used_;
}

std::optional<SourcePos> FieldPositions::Find(std::string_view path) const {
    if (slots_.empty()) return std::nullopt;
    const Slot& slot = slots_[SlotOf(path)];
    if (slot.path_size == kEmpty) return std::nullopt;
    return SourcePos{files_[slot.file], slot.line, slot.column};
}

SourcePos Workflow::PositionOf(const std::string& path) const {
    std::string_view key = path;
    while (!key.empty()) {
        if (auto found = positions.Find(key)) return *found;
        auto cut = key.find_last_of(".[");
        if (cut == std::string_view::npos) break;
        key = key.substr(0, cut);
    }
    return SourcePos{source_file, 0, 0};
}

const AgentSpec* Workflow::FindAgentByName(std::string_view agent_name) const {
    for (const auto& agent : agents) {
        if (agent.name == agent_name) return &agent;
    }
    return nullptr;
}

const AgentSpec* Workflow::FindAgentById(std::string_view id) const {
    for (const auto& agent : agents) {
        if (!agent.id.empty() && agent.id == id) return &agent;
    }
    return nullptr;
}

const McpServerSpec* Workflow::FindMcpServer(std::string_view server_name) const {
    for (const auto& server : mcp_servers) {
        if (server.name == server_name) return &server;
    }
    return nullptr;
}

const AgentSpec* Workflow::ResolveAgent(const StepSpec& step) const {
    if (!step.agent_name.empty()) return FindAgentByName(step.agent_name);
    if (!step.agent_id.empty()) {
        if (const auto* agent = FindAgentById(step.agent_id)) return agent;
        // LibreFang resolves agent_id against running agents; files name agents, so accept
        // a name in agent_id too.
        return FindAgentByName(step.agent_id);
    }
    return nullptr;
}

}  // namespace strowger::model
