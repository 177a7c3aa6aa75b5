#include "testing/test_util.hpp"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace strowger::testing {

TempDir::TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("strowger-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Write(const std::string& name, const std::string& content) const {
    auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary);
    out << content;
    return file.string();
}

std::string ReadFileOrDie(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

std::string SourceDir() {
    const char* dir = std::getenv("STROWGER_SOURCE_DIR");
    return dir ? dir : STROWGER_SOURCE_DIR_DEFAULT;
}

std::string StrowgerBinary() {
    const char* bin = std::getenv("STROWGER_BINARY");
    return bin ? bin : STROWGER_BINARY_DEFAULT;
}

}  // namespace strowger::testing
