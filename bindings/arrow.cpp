// Arrow C Data Interface import (filled in by the Arrow work).
#include <pybind11/pybind11.h>

namespace engine::bind {
void bind_arrow(pybind11::module_&) {}
}  // namespace engine::bind
