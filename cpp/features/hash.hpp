// The hash functions of the feature assembler. They are part of the stored
// contract: a model trained on hashed buckets is only valid while these stay
// bit for bit the same, so any change here needs a new FeatureSpec format.
//
// A categorical value becomes a 64-bit *code* first:
//   integer / bool  the value's 64-bit two's-complement pattern (int -1 and
//                   uint64 2**64 - 1 are one category; false = 0, true = 1)
//   string          FNV-1a 64 of its UTF-8 bytes
//   missing         kMissingCode = FNV-1a 64 of the single byte 0xFF, which no
//                   UTF-8 string contains
// Codes are mixed by splitmix64's output function `mix64` and reduced to
// [0, buckets) by a multiply-high (Lemire), with no division per row:
//   hashed  reduce_to(mix64(code), buckets)
//   cross   reduce_to(mix64(m_0 ^ m_1 ^ ... ^ m_{k-1}), buckets)
//           where m_i = mix64(code_i + i * kGolden), i = the source's position
//   reduce_to(h, n) = (h * n) >> 64   (128-bit product)
// The position term keeps (a, b) and (b, a) apart and stops equal values from
// cancelling. The XOR lets a cross be split into an item part (computed once
// per item) and a request part (once per request), leaving one mix per row;
// integer arithmetic is exact, so the split changes no result.
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine::features {

constexpr uint64_t kFnvOffset = 0xCBF29CE484222325ull;
constexpr uint64_t kFnvPrime = 0x00000100000001B3ull;
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

constexpr uint64_t fnv1a64(const char* bytes, size_t size) {
  uint64_t h = kFnvOffset;
  for (size_t i = 0; i < size; ++i) {
    h ^= uint64_t(uint8_t(bytes[i]));
    h *= kFnvPrime;
  }
  return h;
}

constexpr uint64_t kMissingCode = fnv1a64("\xFF", 1);

// splitmix64's output for state x (Steele, Lea, Flood 2014; Vigna's constants).
constexpr uint64_t mix64(uint64_t x) {
  uint64_t z = x + kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A cross source's term: its code mixed with its position in the cross.
constexpr uint64_t cross_term(uint64_t code, uint32_t position) {
  return mix64(code + uint64_t(position) * kGolden);
}

// [0, buckets) from 64 uniform bits, without a division.
inline uint64_t reduce_to(uint64_t h, uint64_t buckets) {
  return uint64_t((unsigned __int128)h * buckets >> 64);
}

}  // namespace engine::features
