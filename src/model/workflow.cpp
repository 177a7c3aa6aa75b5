#include "model/workflow.hpp"

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

SourcePos Workflow::PositionOf(const std::string& path) const {
    std::string key = path;
    while (!key.empty()) {
        auto it = positions.find(key);
        if (it != positions.end()) return it->second;
        auto cut = key.find_last_of(".[");
        if (cut == std::string::npos) break;
        key.resize(cut);
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
