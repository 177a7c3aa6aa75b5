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

}  // namespace strowger::cli
