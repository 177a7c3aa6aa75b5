#include "tools/builtin/builtin_tools.hpp"

namespace strowger::tools {

void RegisterBuiltinTools(ToolRegistry& registry, std::shared_ptr<sandbox::Sandbox> sandbox,
                          std::shared_ptr<http::HttpClient> client) {
    if (sandbox) registry.Register(builtin::MakeShellTool(std::move(sandbox)));
    registry.Register(builtin::MakeReadFileTool());
    registry.Register(builtin::MakeWriteFileTool());
    registry.Register(builtin::MakeListDirTool());
    registry.Register(builtin::MakeGrepTool());
    if (client) registry.Register(builtin::MakeHttpRequestTool(std::move(client)));
}

}  // namespace strowger::tools
