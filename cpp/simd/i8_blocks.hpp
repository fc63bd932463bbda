// The interleaved int8 layout that scores many short rows against one query
// without horizontal sums: rows in blocks of 16, and within a block the
// dimensions in groups of 4, each group holding those 4 bytes of all 16 rows
// (64 bytes: one AVX-512 register, two AVX2 ones). A kernel broadcasts the
// query's 4 bytes of a group and adds 4 products into each row's lane, so
// the 16 sums of a block come out in one register. Used for the IVF
// centroids, which every query ranks in full.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::simd {

constexpr size_t kI8BlockRows = 16;

inline size_t i8_groups(size_t dim) { return (dim + 3) / 4; }
inline size_t i8_blocks(size_t n) { return (n + kI8BlockRows - 1) / kI8BlockRows; }

// blocked[((b * groups + g) * 16 + r) * 4 + j] = codes[(16 b + r) * dim + 4 g + j];
// rows past n and dimensions past dim are zero.
inline std::vector<int8_t> interleave_i8(const int8_t* codes, size_t n, size_t dim) {
  const size_t groups = i8_groups(dim);
  std::vector<int8_t> blocked(i8_blocks(n) * groups * kI8BlockRows * 4, 0);
  for (size_t r = 0; r < n; ++r)
    for (size_t d = 0; d < dim; ++d) {
      const size_t b = r / kI8BlockRows, g = d / 4;
      blocked[((b * groups + g) * kI8BlockRows + r % kI8BlockRows) * 4 + d % 4] = codes[r * dim + d];
    }
  return blocked;
}

}  // namespace engine::simd
