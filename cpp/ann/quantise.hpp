// Symmetric int8 quantisation shared by list codes, centroid codes and
// queries: x ~ scale * code with code in [-127, 127] (never -128, which the
// int8 dot-product kernels rely on).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace engine::ann {

// Writes dim codes and returns the scale (0 for the zero vector).
inline float quantise_i8(const float* v, size_t dim, int8_t* codes) {
  float mx = 0;
  for (size_t d = 0; d < dim; ++d) mx = std::max(mx, std::fabs(v[d]));
  const float inv = mx > 0 ? 127.0f / mx : 0.0f;
  for (size_t d = 0; d < dim; ++d) codes[d] = int8_t(std::lrint(v[d] * inv));
  return mx / 127.0f;
}

}  // namespace engine::ann
