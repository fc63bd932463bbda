// Row packing for the matrix kernels: W rows at a time in dimension-major
// order, so one vector load holds one dimension of W rows.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

namespace engine::simd {
namespace {  // each kernel translation unit compiles its own copy

// packed[(b * dim + d) * W + l] = rows[(b * W + l) * dim + d]; lanes past
// the last row are zero. Returns the number of blocks.
template <size_t W>
size_t pack_rows(const float* rows, size_t n, size_t dim, std::vector<float>& packed) {
  const size_t blocks = (n + W - 1) / W;
  packed.resize(blocks * dim * W);
  if (n % W)  // only the last block has lanes without a row
    for (size_t d = 0; d < dim; ++d)
      std::fill_n(packed.data() + (blocks - 1) * dim * W + d * W + n % W, W - n % W, 0.0f);
  for (size_t r = 0; r < n; ++r) {
    float* dst = packed.data() + (r / W) * dim * W + r % W;
    const float* src = rows + r * dim;
    for (size_t d = 0; d < dim; ++d) dst[d * W] = src[d];
  }
  return blocks;
}

}  // namespace
}  // namespace engine::simd
