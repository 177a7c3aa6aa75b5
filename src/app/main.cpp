// The strowger binary: the only code not linked into tests.
#include "cli/commands.hpp"

int main(int argc, char** argv) {
    return strowger::cli::Main(argc, argv);
}
