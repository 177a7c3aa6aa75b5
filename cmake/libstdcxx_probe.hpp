// Included by cmake/ClangExpected.cmake to find the C++ standard library headers the compiler uses.
#include <version>
