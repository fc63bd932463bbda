// Float -> uint32 keys with the same order, so that a split is one integer
// compare and missing values can be given keys below or above every number.
// Unsigned, so that `i = 2i + 1 + (key >= threshold)` compiles to cmp + adc
// instead of cmp + setge + movzx: the walk's inner step is a handful of
// instructions, and two fewer per step per row is measurable.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

namespace engine::trees {

constexpr uint32_t kMissingHigh = std::numeric_limits<uint32_t>::max();
constexpr uint32_t kMissingLow = 0;

// Monotone for every non-NaN float; -0 and +0 share a key, as they compare
// equal. Keys of +-inf stay strictly inside (kMissingLow, kMissingHigh).
inline uint32_t float_key(float x) {
  x += 0.0f;  // -0 -> +0
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  // Negative floats reversed (their bits grow with magnitude), then the sign
  // bit flipped so that unsigned order is signed order.
  return uint32_t(bits ^ ((bits >> 31) & 0x7fffffff)) ^ 0x80000000u;
}

inline float key_float(uint32_t key) {  // the inverse, for categorical splits
  const int32_t s = int32_t(key ^ 0x80000000u);
  const int32_t bits = s ^ ((s >> 31) & 0x7fffffff);
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace engine::trees
