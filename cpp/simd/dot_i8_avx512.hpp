// The AVX-512 int8 dot-product loop, shared by the plain AVX-512 and the
// AVX-512 VNNI translation units (each instantiates it with its own flags).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "simd/reduce_avx512.hpp"

namespace engine::simd {
namespace {  // internal linkage: each TU keeps its own instantiation

// |q| times x with q's sign moved onto x (neither side is ever -128, so the
// u8 x s8 products cannot overflow). Exact in int32. `Dot` adds 64 products
// into 16 int32 lanes: maddubs + madd here, one vpdpbusd with VNNI.
template <class Dot>
void dot_i8_with(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
                 int32_t* out, Dot dot) {
  constexpr size_t B = 64;
  const size_t full = dim - dim % B;
  const __mmask64 tail = dim % B ? (~uint64_t{0}) >> (B - dim % B) : 0;
  const __m512i zero = _mm512_setzero_si512();
  size_t i = 0;
  auto row_at = [&](size_t j) { return base + (idx ? size_t{idx[j]} : j) * dim; };
  auto step = [&](__m512i acc, const int8_t* r, size_t d, __mmask64 m) {
    const __m512i qv = _mm512_maskz_loadu_epi8(m, q + d);
    const __m512i xv = _mm512_maskz_loadu_epi8(m, r + d);
    const __mmask64 neg = _mm512_movepi8_mask(qv);
    return dot(acc, _mm512_abs_epi8(qv), _mm512_mask_sub_epi8(xv, neg, zero, xv));
  };
  for (; i + 4 <= n; i += 4) {
    const int8_t *r0 = row_at(i), *r1 = row_at(i + 1), *r2 = row_at(i + 2), *r3 = row_at(i + 3);
    __m512i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
    for (size_t d = 0; d < full; d += B) {
      a0 = step(a0, r0, d, ~__mmask64{0});
      a1 = step(a1, r1, d, ~__mmask64{0});
      a2 = step(a2, r2, d, ~__mmask64{0});
      a3 = step(a3, r3, d, ~__mmask64{0});
    }
    if (tail) {
      a0 = step(a0, r0, full, tail);
      a1 = step(a1, r1, full, tail);
      a2 = step(a2, r2, full, tail);
      a3 = step(a3, r3, full, tail);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), reduce4_epi32(a0, a1, a2, a3));
  }
  for (; i < n; ++i) {
    const int8_t* r = row_at(i);
    __m512i a = zero;
    for (size_t d = 0; d < full; d += B) a = step(a, r, d, ~__mmask64{0});
    if (tail) a = step(a, r, full, tail);
    out[i] = _mm512_reduce_add_epi32(a);
  }
}

// dot_i8 over the interleaved layout (i8_blocks.hpp): per group of 4
// dimensions, one 64-byte load holds those bytes of 16 rows and one `Dot`
// adds them into the 16 row sums. The query's groups are prepared 16 at a
// time (broadcast |q| and q's sign mask), so they stay in registers.
template <class Dot>
void dot_i8_blocked_with(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                         int32_t* out, Dot dot) {
  constexpr size_t G = 16;
  const __m512i zero = _mm512_setzero_si512();
  for (size_t g0 = 0; g0 < groups; g0 += G) {
    const size_t gn = groups - g0 < G ? groups - g0 : G;
    __m512i uq[G];
    __mmask64 neg[G];
    for (size_t g = 0; g < gn; ++g) {
      int32_t word;
      __builtin_memcpy(&word, q + 4 * (g0 + g), 4);
      const __m512i qv = _mm512_set1_epi32(word);
      uq[g] = _mm512_abs_epi8(qv);
      neg[g] = _mm512_movepi8_mask(qv);
    }
    for (size_t b = 0; b < blocks; ++b) {
      const int8_t* blk = blocked + (b * groups + g0) * 64;
      int32_t* o = out + b * 16;
      __m512i acc = g0 ? _mm512_loadu_si512(o) : zero;
      for (size_t g = 0; g < gn; ++g) {
        const __m512i xv = _mm512_loadu_si512(blk + g * 64);
        acc = dot(acc, uq[g], _mm512_mask_sub_epi8(xv, neg[g], zero, xv));
      }
      _mm512_storeu_si512(o, acc);
    }
  }
}

// dot_u4_blocked (u4_blocks.hpp): per group, one 64-byte load holds 4 codes
// of 32 rows; its low nibbles are rows 0-15, its high ones rows 16-31, each
// `Dot` adding unsigned codes times the broadcast signed weights.
template <class Dot>
void dot_u4_blocked_with(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups,
                         int32_t* out, Dot dot) {
  constexpr size_t G = 16;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  for (size_t g0 = 0; g0 < groups; g0 += G) {
    const size_t gn = groups - g0 < G ? groups - g0 : G;
    __m512i wv[G];
    for (size_t g = 0; g < gn; ++g) {
      int32_t word;
      __builtin_memcpy(&word, w + 4 * (g0 + g), 4);
      wv[g] = _mm512_set1_epi32(word);
    }
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* blk = blocked + (b * groups + g0) * 64;
      int32_t* o = out + b * 32;
      __m512i lo = g0 ? _mm512_loadu_si512(o) : _mm512_setzero_si512();
      __m512i hi = g0 ? _mm512_loadu_si512(o + 16) : _mm512_setzero_si512();
      for (size_t g = 0; g < gn; ++g) {
        const __m512i x = _mm512_loadu_si512(blk + g * 64);
        lo = dot(lo, _mm512_and_si512(x, low4), wv[g]);
        hi = dot(hi, _mm512_and_si512(_mm512_srli_epi16(x, 4), low4), wv[g]);
      }
      _mm512_storeu_si512(o, lo);
      _mm512_storeu_si512(o + 16, hi);
    }
  }
}

}  // namespace
}  // namespace engine::simd
