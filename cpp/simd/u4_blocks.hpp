// The interleaved 4-bit layout for long exact scans (a large merchant's
// store page reads every row of its range): rows in blocks of 32, and within
// a block the dimensions in groups of 4. A group's 64 bytes hold those 4
// codes of all 32 rows: byte 4r + j has row r's code in its low nibble and
// row r + 16's in its high one. A kernel masks or shifts the nibbles into
// two registers of 16 rows x 4 unsigned bytes and adds their products with
// the query's 4 signed weights into 16 row sums each (vpdpbusd), so the 32
// sums come out in two registers, as in i8_blocks.hpp at half the bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::simd {

constexpr size_t kU4BlockRows = 32;

inline size_t u4_blocks(size_t n) { return (n + kU4BlockRows - 1) / kU4BlockRows; }

// Packs code(r, d) (in [0, 15]) of n rows x dim into `blocked` of
// u4_blocks(n) * groups * 64 bytes, zeroed by the caller: rows past n and
// dimensions past dim stay zero.
template <class Code>
void interleave_u4_into(size_t n, size_t dim, Code code, uint8_t* blocked) {
  const size_t groups = (dim + 3) / 4;
  for (size_t r = 0; r < n; ++r) {
    const size_t in = r % kU4BlockRows, shift = in < 16 ? 0 : 4;
    uint8_t* row = blocked + (r / kU4BlockRows) * groups * 64 + (in % 16) * 4;
    for (size_t d = 0; d < dim; ++d) row[(d / 4) * 64 + d % 4] |= uint8_t((code(r, d) & 15) << shift);
  }
}

inline std::vector<uint8_t> interleave_u4(const uint8_t* codes, size_t n, size_t dim) {
  std::vector<uint8_t> blocked(u4_blocks(n) * ((dim + 3) / 4) * 64, 0);
  interleave_u4_into(n, dim, [&](size_t r, size_t d) { return codes[r * dim + d]; }, blocked.data());
  return blocked;
}

}  // namespace engine::simd
