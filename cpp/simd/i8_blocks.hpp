// The interleaved int8 layout that scores many short rows against one query
// without horizontal sums: rows in blocks of 16, and within a block the
// dimensions in groups of 4, each group holding those 4 bytes of all 16 rows
// (64 bytes: one AVX-512 register, two AVX2 ones). A kernel broadcasts the
// query's 4 bytes of a group and adds 4 products into each row's lane, so
// the 16 sums of a block come out in one register. Used for the IVF
// centroids, which every query ranks in full, and for i8 list codes, which
// a walk scores list by list.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace engine::simd {

constexpr size_t kI8BlockRows = 16;

inline size_t i8_groups(size_t dim) { return (dim + 3) / 4; }
inline size_t i8_blocks(size_t n) { return (n + kI8BlockRows - 1) / kI8BlockRows; }

// blocked[((b * groups + g) * 16 + r) * 4 + j] = codes[(16 b + r) * dim + 4 g + j],
// into `blocked` of i8_blocks(n) * groups * 64 bytes, zeroed by the caller:
// rows past n and dimensions past dim stay zero.
inline void interleave_i8_into(const int8_t* codes, size_t n, size_t dim, int8_t* blocked) {
  const size_t groups = i8_groups(dim);
  for (size_t r = 0; r < n; ++r) {
    int8_t* row = blocked + (r / kI8BlockRows) * groups * kI8BlockRows * 4 + (r % kI8BlockRows) * 4;
    for (size_t g = 0; g < groups; ++g) {
      const size_t width = dim - 4 * g < 4 ? dim - 4 * g : 4;
      std::memcpy(row + g * kI8BlockRows * 4, codes + r * dim + 4 * g, width);
    }
  }
}

inline std::vector<int8_t> interleave_i8(const int8_t* codes, size_t n, size_t dim) {
  std::vector<int8_t> blocked(i8_blocks(n) * i8_groups(dim) * kI8BlockRows * 4, 0);
  interleave_i8_into(codes, n, dim, blocked.data());
  return blocked;
}

}  // namespace engine::simd
