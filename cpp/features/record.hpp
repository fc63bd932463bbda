// Reading and writing the item / request records (plan.hpp), the request's
// {key: value} maps and the key index both lookups and item ids use.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "features/hash.hpp"
#include "features/plan.hpp"

namespace engine::features {

// Arrow buffers are only recommended to be aligned: every 8-byte read from
// one goes through memcpy (one plain load on the targets we build for).
inline uint64_t load_u64(const void* base, int64_t i) {
  uint64_t v;
  std::memcpy(&v, static_cast<const char*>(base) + i * 8, 8);
  return v;
}
inline double load_f64(const void* base, int64_t i) {
  double v;
  std::memcpy(&v, static_cast<const char*>(base) + i * 8, 8);
  return v;
}
inline bool bit_set(const uint8_t* bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }

inline double as_number(uint64_t word) {
  double v;
  std::memcpy(&v, &word, 8);
  return v;
}
inline uint64_t number_word(double v) {
  uint64_t w;
  std::memcpy(&w, &v, 8);
  return w;
}
inline bool slot_valid(const uint64_t* record, uint32_t slot) {
  return (record[slot >> 6] >> (slot & 63)) & 1;
}

// A record with every value missing: no validity bit set, numbers NaN.
// Loops, not memset: this runs per logged row, on a few words, and glibc's
// AVX-512 memset handles sizes below one vector with masked stores, which
// cost tens of nanoseconds each on AMD Zen 4 (measured: most of the offline time).
inline void clear_record(uint64_t* record, const RecordLayout& layout) {
  for (uint32_t m = 0; m < layout.masks; ++m) record[m] = 0;
  const uint64_t nan = number_word(std::numeric_limits<double>::quiet_NaN());
  for (uint32_t s = 0; s < layout.slots; ++s) record[layout.masks + s] = nan;
}

// memcmp for a short run of 64-bit words (see clear_record on libc's small
// sizes); no early exit, so the compiler vectorises it.
inline bool equal_words(const void* a, const void* b, int64_t n) {
  uint64_t diff = 0;
  for (int64_t i = 0; i < n; ++i) diff |= load_u64(a, i) ^ load_u64(b, i);
  return diff == 0;
}
inline void put_number(uint64_t* record, const RecordLayout& layout, uint32_t slot, double v) {
  record[layout.masks + slot] = number_word(v);
}
inline void put_code(uint64_t* record, const RecordLayout& layout, uint32_t slot, uint64_t code) {
  record[layout.masks + slot] = code;
  record[slot >> 6] |= uint64_t{1} << (slot & 63);
}

// The same for bytes (short strings).
inline bool equal_bytes(const char* a, const char* b, size_t n) {
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) diff |= load_u64(a + i, 0) ^ load_u64(b + i, 0);
  for (; i < n; ++i) diff |= uint64_t(uint8_t(a[i]) ^ uint8_t(b[i]));
  return diff == 0;
}

// Open addressing over 64-bit keys stored elsewhere: maps a key to the
// position of its *last* occurrence (as building a dict from pairs would).
class KeyIndex {
 public:
  // keys: n int64 / uint64 values (possibly unaligned).
  void build(const void* keys, int64_t n);
  // The position of `key` in the keys given to build (or a copy of them), or -1.
  int64_t find(const void* keys, uint64_t key) const {
    for (uint64_t i = slot_of(key);; i = (i + 1) & mask_) {
      const int64_t pos = table_[i];
      if (pos < 0) return -1;
      if (load_u64(keys, pos) == key) return pos;
    }
  }

  // Fibonacci hashing: one multiply, and consecutive ids (the common case)
  // spread evenly; probing is linear at a load of at most 1/2.
  uint64_t slot_of(uint64_t key) const { return (key * kGolden) >> shift_; }

 private:
  std::vector<int64_t> table_;
  uint64_t mask_ = 0;
  int shift_ = 64;
};

// Maps up to this size are scanned; larger ones get a KeyIndex.
constexpr int64_t kScanMapSize = 8;

// One request's {key: value} map for lookup features.
struct MapView {
  const void* keys = nullptr;          // int64, this map's first entry
  const void* values = nullptr;        // float64
  const uint8_t* value_validity = nullptr;  // null: no null values
  int64_t value_bit = 0;               // validity bit of the first entry
  int64_t size = 0;
  const KeyIndex* index = nullptr;     // set when size > kScanMapSize

  // The value of the last entry with `key`; NaN when there is none, or it is
  // null (a missing map has size 0).
  double find(uint64_t key) const {
    int64_t pos = -1;
    if (index != nullptr) {
      pos = index->find(keys, key);
    } else {
      for (int64_t i = size - 1; i >= 0; --i)
        if (load_u64(keys, i) == key) {
          pos = i;
          break;
        }
    }
    if (pos < 0) return std::numeric_limits<double>::quiet_NaN();
    if (value_validity != nullptr && !bit_set(value_validity, value_bit + pos))
      return std::numeric_limits<double>::quiet_NaN();
    return load_f64(values, pos);
  }
};

}  // namespace engine::features
