#include "cli/remote.hpp"

#include "cli/common.hpp"

namespace strowger::cli {

std::string StrField(const json::object& o, std::string_view key) {
    return std::string(JsonString(o, key));
}

std::unique_ptr<ApiClient> ConnectOrReport(const std::string& server) {
    auto client = ApiClient::Connect(server);
    if (!client) {
        PrintError(client.error().message());
        return nullptr;
    }
    return std::move(*client);
}

}  // namespace strowger::cli
