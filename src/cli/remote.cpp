#include "cli/remote.hpp"

#include "cli/common.hpp"

namespace strowger::cli {

std::unique_ptr<ApiClient> ConnectOrReport(const std::string& server) {
    auto client = ApiClient::Connect(server);
    if (!client) {
        PrintError(client.error().message());
        return nullptr;
    }
    return std::move(*client);
}

int ReportRemoteError(const Error& error) {
    PrintError(error.message());
    switch (error.code()) {
        case ErrorCode::kNotFound:
        case ErrorCode::kFailedPrecondition:
        case ErrorCode::kInvalidArgument:
        case ErrorCode::kAborted:
            return ToInt(ExitCode::kUsage);
        default:
            return ToInt(ExitCode::kInternal);
    }
}

}  // namespace strowger::cli
