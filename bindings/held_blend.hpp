// A native value blend together with the numpy item columns it reads
// (engine._core.ValueBlend), shared by the rerank and scorer bindings.
#pragma once
#include <pybind11/numpy.h>

#include <memory>
#include <vector>

#include "rerank/value_blend.hpp"

namespace engine::bind {

struct HeldBlend {
  std::shared_ptr<rerank::ValueBlend> blend;
  std::vector<pybind11::array> columns;
};

}  // namespace engine::bind
