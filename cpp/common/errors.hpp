// Error types of the core. The bindings map them to Python's ValueError,
// TypeError and IOError; the core never prints and never aborts.
#pragma once
#include <stdexcept>
#include <string>

namespace engine {

struct ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
struct TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};
// A stored file or array set that fails validation (truncated, corrupt, hostile).
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace engine
