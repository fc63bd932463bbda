// Arrow bitmaps (validity and boolean values): bit i of the array is bit
// (i % 8) of byte (i / 8), least significant bit first. Read a byte or a word
// at a time; per-bit work only at the unaligned edges.
#pragma once
#include <cstdint>

namespace engine::arrow {

// Index (relative to `first`) of the first zero bit in [first, first + count),
// or -1 when all are set. A zero validity bit is a null.
int64_t first_unset_bit(const uint8_t* bits, int64_t first, int64_t count);

// out[i] = bit (first + i), as 0 / 1 bytes (numpy's bool layout).
void unpack_bits(const uint8_t* bits, int64_t first, int64_t count, uint8_t* out);

}  // namespace engine::arrow
