// Float -> int32 keys with the same order, so that a split is one integer
// compare and missing values can be given keys below or above every number.
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>

namespace engine::trees {

constexpr int32_t kMissingHigh = std::numeric_limits<int32_t>::max();
constexpr int32_t kMissingLow = std::numeric_limits<int32_t>::min();

// Monotone for every non-NaN float; -0 and +0 share a key, as they compare
// equal. Keys of +-inf stay strictly inside (kMissingLow, kMissingHigh).
inline int32_t float_key(float x) {
  x += 0.0f;  // -0 -> +0
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits ^ ((bits >> 31) & 0x7fffffff);
}

inline float key_float(int32_t key) {  // the inverse, for categorical splits
  const int32_t bits = key ^ ((key >> 31) & 0x7fffffff);
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

}  // namespace engine::trees
