#include "testing/mcp_servers.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace strowger::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadIfExists(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

}  // namespace

std::string FindInPath(const std::string& program) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        fs::path candidate = fs::path(dir) / program;
        if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    return program;
}

Result<fs::path> InstallMcpTestServers() {
    const fs::path source = STROWGER_MCP_SERVERS_SOURCE;
    const fs::path dir = STROWGER_MCP_SERVERS_DIR;
    const fs::path bin = dir / "node_modules" / ".bin";
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return InternalError("cannot create " + dir.string() + ": " + ec.message());
    int lock = ::open((dir / ".install.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
        if (lock >= 0) ::close(lock);
        return InternalError("cannot lock " + (dir / ".install.lock").string());
    }
    struct Unlock {
        int fd;
        ~Unlock() { ::close(fd); }
    } unlock{lock};

    const std::string lockfile = ReadIfExists(source / "package-lock.json");
    if (lockfile.empty()) return InternalError("missing " + source.string() + "/package-lock.json");
    if (ReadIfExists(dir / ".installed") == lockfile && fs::exists(bin / "mcp-server-everything") &&
        fs::exists(bin / "mcp-server-filesystem")) {
        return bin;
    }
    fs::remove(dir / ".installed", ec);
    for (const char* name : {"package.json", "package-lock.json"}) {
        fs::copy_file(source / name, dir / name, fs::copy_options::overwrite_existing, ec);
        if (ec) return InternalError("cannot copy " + std::string(name) + ": " + ec.message());
    }
    auto start = std::chrono::steady_clock::now();
    std::string command = "cd '" + dir.string() +
                          "' && timeout 170 npm ci --no-audit --no-fund --loglevel=error "
                          ">npm-ci.log 2>&1";
    int status = std::system(command.c_str());
    if (status != 0) {
        return UnavailableError(
            "`npm ci` in " + dir.string() + " failed (status " + std::to_string(status) +
            "); it needs node, npm and the npm registry:\n" + ReadIfExists(dir / "npm-ci.log"));
    }
    std::ofstream(dir / ".installed", std::ios::binary) << lockfile;
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
    std::cerr << "installed the MCP test servers in " << dir << " in " << seconds.count() << " s\n";
    return bin;
}

fs::path EverythingServerScript(const fs::path& bin) {
    return bin.parent_path() / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js";
}

}  // namespace strowger::testing
