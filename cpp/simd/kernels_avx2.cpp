// AVX2 + FMA + F16C kernels. Compiled only with this file's flags and called
// only after dispatch has checked the CPU.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "simd/half.hpp"
#include "simd/kernels.hpp"
#include "simd/pack_rows.hpp"

namespace engine::simd {
namespace {

constexpr size_t W = 8;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

struct LoadF32 {
  using T = float;
  static __m256 full(const float* p) { return _mm256_loadu_ps(p); }
  static float one(float x) { return x; }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 full(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float one(uint16_t x) { return half_to_float(x); }
};

template <class L>
inline float tail_dot(const float* q, const typename L::T* r, size_t from, size_t dim) {
  float acc = 0.0f;
  for (size_t d = from; d < dim; ++d) acc += q[d] * L::one(r[d]);
  return acc;
}

template <class L, class RowAt>
void dot_rows(const float* q, size_t n, size_t dim, float* out, RowAt row_at) {
  const size_t full = dim - dim % W;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const typename L::T* r0 = row_at(i);
    const typename L::T* r1 = row_at(i + 1);
    const typename L::T* r2 = row_at(i + 2);
    const typename L::T* r3 = row_at(i + 3);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t d = 0; d < full; d += W) {
      const __m256 qv = _mm256_loadu_ps(q + d);
      a0 = _mm256_fmadd_ps(qv, L::full(r0 + d), a0);
      a1 = _mm256_fmadd_ps(qv, L::full(r1 + d), a1);
      a2 = _mm256_fmadd_ps(qv, L::full(r2 + d), a2);
      a3 = _mm256_fmadd_ps(qv, L::full(r3 + d), a3);
    }
    out[i] = hsum(a0) + tail_dot<L>(q, r0, full, dim);
    out[i + 1] = hsum(a1) + tail_dot<L>(q, r1, full, dim);
    out[i + 2] = hsum(a2) + tail_dot<L>(q, r2, full, dim);
    out[i + 3] = hsum(a3) + tail_dot<L>(q, r3, full, dim);
  }
  for (; i < n; ++i) {
    const typename L::T* r = row_at(i);
    __m256 a = _mm256_setzero_ps();
    for (size_t d = 0; d < full; d += W) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), L::full(r + d), a);
    out[i] = hsum(a) + tail_dot<L>(q, r, full, dim);
  }
}

template <class L>
void dot_any(const float* q, const typename L::T* base, const uint32_t* idx, size_t n, size_t dim,
             float* out) {
  if (idx)
    dot_rows<L>(q, n, dim, out, [=](size_t i) { return base + size_t{idx[i]} * dim; });
  else
    dot_rows<L>(q, n, dim, out, [=](size_t i) { return base + i * dim; });
}
void dot_f32(const float* q, const float* base, const uint32_t* idx, size_t n, size_t dim,
             float* out) {
  dot_any<LoadF32>(q, base, idx, n, dim, out);
}
void dot_f16(const float* q, const uint16_t* base, const uint32_t* idx, size_t n, size_t dim,
             float* out) {
  dot_any<LoadF16>(q, base, idx, n, dim, out);
}
// |q| times x with q's sign moved onto x: maddubs (u8 x s8 -> pairs of i16)
// cannot saturate because neither side is -128. Exact in int32.
inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

void dot_i8(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
            int32_t* out) {
  constexpr size_t B = 32;
  const size_t full = dim - dim % B;
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t i = 0; i < n; ++i) {
    const int8_t* r = base + (idx ? size_t{idx[i]} : i) * dim;
    __m256i acc = _mm256_setzero_si256();
    for (size_t d = 0; d < full; d += B) {
      const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + d));
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r + d));
      const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(qv), _mm256_sign_epi8(xv, qv));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
    }
    int32_t total = hsum_epi32(acc);
    for (size_t d = full; d < dim; ++d) total += int32_t{q[d]} * int32_t{r[d]};
    out[i] = total;
  }
}

// dot_i8 over the interleaved layout (i8_blocks.hpp): a block's 16 rows are
// two registers per group of 4 dimensions; q's 4 bytes are broadcast and its
// signs moved onto the codes as in dot_i8.
void dot_i8_blocked(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                    int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (size_t b = 0; b < blocks; ++b) {
    const int8_t* blk = blocked + b * groups * 64;
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
    for (size_t g = 0; g < groups; ++g) {
      int32_t word;
      __builtin_memcpy(&word, q + 4 * g, 4);
      const __m256i qv = _mm256_set1_epi32(word), uq = _mm256_abs_epi8(qv);
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + g * 64));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + g * 64 + 32));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_maddubs_epi16(uq, _mm256_sign_epi8(x0, qv)), ones));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_maddubs_epi16(uq, _mm256_sign_epi8(x1, qv)), ones));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 16), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 16 + 8), hi);
  }
}

// dot_u4_blocked: a group's 64 bytes are two registers; the low nibbles of
// the first are rows 0-7, of the second rows 8-15, the high nibbles rows
// 16-23 and 24-31. Products are at most 15 * 127 * 2 per maddubs pair, far
// from its int16 saturation.
void dot_u4_blocked(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups, int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F);
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = blocked + b * groups * 64;
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                      _mm256_setzero_si256()};
    for (size_t g = 0; g < groups; ++g) {
      int32_t word;
      __builtin_memcpy(&word, w + 4 * g, 4);
      const __m256i wv = _mm256_set1_epi32(word);
      for (size_t h = 0; h < 2; ++h) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + g * 64 + h * 32));
        const __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
        acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(_mm256_maddubs_epi16(lo, wv), ones));
        acc[2 + h] = _mm256_add_epi32(acc[2 + h], _mm256_madd_epi16(_mm256_maddubs_epi16(hi, wv), ones));
      }
    }
    for (size_t i = 0; i < 4; ++i) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 32 + i * 8), acc[i]);
  }
}

// Eight compared at once into a bit mask; only the set bits cost a step.
size_t above_i32(const int32_t* x, size_t n, int32_t bound, uint32_t* positions) {
  const __m256i b = _mm256_set1_epi32(bound);
  size_t count = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i gt = _mm256_cmpgt_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), b);
    for (unsigned mask = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(gt))); mask; mask &= mask - 1)
      positions[count++] = uint32_t(i + unsigned(__builtin_ctz(mask)));
  }
  for (; i < n; ++i)
    if (x[i] > bound) positions[count++] = uint32_t(i);
  return count;
}

// Scores as a small matrix product: rows packed 8 at a time in
// dimension-major order, one load feeding four FMAs (see the AVX-512 kernel).
void dot_f32_multi(const float* queries, size_t nq, const float* rows, size_t n, size_t dim,
                   float* out) {
  constexpr size_t Q = 4;
  thread_local std::vector<float> packed;
  const size_t blocks = pack_rows<W>(rows, n, dim, packed);
  alignas(32) float tmp[W];
  for (size_t b = 0; b < blocks; ++b) {
    const float* pb = packed.data() + b * dim * W;
    const size_t r0 = b * W, m = std::min(W, n - r0);
    auto store = [&](size_t j, __m256 acc) {
      if (m == W) {
        _mm256_storeu_ps(out + j * n + r0, acc);
      } else {
        _mm256_store_ps(tmp, acc);
        for (size_t l = 0; l < m; ++l) out[j * n + r0 + l] = tmp[l];
      }
    };
    size_t j = 0;
    for (; j + Q <= nq; j += Q) {
      const float* q = queries + j * dim;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (size_t d = 0; d < dim; ++d) {
        const __m256 v = _mm256_loadu_ps(pb + d * W);
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), v, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + dim + d), v, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + 2 * dim + d), v, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(q + 3 * dim + d), v, a3);
      }
      store(j, a0);
      store(j + 1, a1);
      store(j + 2, a2);
      store(j + 3, a3);
    }
    for (; j < nq; ++j) {
      const float* q = queries + j * dim;
      __m256 acc = _mm256_setzero_ps();
      for (size_t d = 0; d < dim; ++d)
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(q + d), _mm256_loadu_ps(pb + d * W), acc);
      store(j, acc);
    }
  }
}

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels k{Level::avx2, "avx2", dot_f32, dot_f16, dot_i8, dot_i8_blocked,
                         dot_u4_blocked, above_i32, dot_f32_multi, f32_to_f16};
  return k;
}

}  // namespace engine::simd
