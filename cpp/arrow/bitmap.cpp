#include "arrow/bitmap.hpp"

#include <cstring>

namespace engine::arrow {

namespace {
inline bool bit(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
}  // namespace

int64_t first_unset_bit(const uint8_t* bits, int64_t first, int64_t count) {
  int64_t i = 0;
  // Leading bits up to a byte boundary.
  for (; i < count && ((first + i) & 7) != 0; ++i)
    if (!bit(bits, first + i)) return i;
  // Whole 64-bit words, then whole bytes: all-ones means no null in them.
  const uint8_t* bytes = bits + ((first + i) >> 3);
  for (; count - i >= 64; i += 64, bytes += 8) {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    if (word != ~uint64_t{0}) break;
  }
  for (; count - i >= 8; i += 8, ++bytes)
    if (*bytes != 0xFF) break;
  // The word or byte holding the first zero, and the trailing bits.
  for (; i < count; ++i)
    if (!bit(bits, first + i)) return i;
  return -1;
}

void unpack_bits(const uint8_t* bits, int64_t first, int64_t count, uint8_t* out) {
  int64_t i = 0;
  for (; i < count && ((first + i) & 7) != 0; ++i) out[i] = bit(bits, first + i);
  const uint8_t* bytes = bits + ((first + i) >> 3);
  for (; count - i >= 8; i += 8, ++bytes) {
    const uint8_t b = *bytes;
    for (int k = 0; k < 8; ++k) out[i + k] = (b >> k) & 1;
  }
  for (; i < count; ++i) out[i] = bit(bits, first + i);
}

}  // namespace engine::arrow
