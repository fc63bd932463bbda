// AVX-512 (F, BW, DQ, VL) kernels. Compiled only with this file's flags and
// called only after dispatch has checked the CPU.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "simd/dot_i8_avx512.hpp"
#include "simd/kernels.hpp"
#include "simd/pack_rows.hpp"
#include "simd/reduce_avx512.hpp"

namespace engine::simd {
namespace {

constexpr size_t W = 16;

// Loaders turn W stored elements (or the masked tail) into 16 floats.
struct LoadF32 {
  using T = float;
  static __m512 full(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 tail(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 full(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 tail(const uint16_t* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
};

// Four rows per step share each query load and keep four FMA chains busy.
template <class L, class RowAt>
void dot_rows(const float* q, size_t n, size_t dim, float* out, RowAt row_at) {
  const size_t full = dim - dim % W;
  const __mmask16 tail = static_cast<__mmask16>((1u << (dim - full)) - 1u);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const typename L::T* r0 = row_at(i);
    const typename L::T* r1 = row_at(i + 1);
    const typename L::T* r2 = row_at(i + 2);
    const typename L::T* r3 = row_at(i + 3);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t d = 0; d < full; d += W) {
      const __m512 qv = _mm512_loadu_ps(q + d);
      a0 = _mm512_fmadd_ps(qv, L::full(r0 + d), a0);
      a1 = _mm512_fmadd_ps(qv, L::full(r1 + d), a1);
      a2 = _mm512_fmadd_ps(qv, L::full(r2 + d), a2);
      a3 = _mm512_fmadd_ps(qv, L::full(r3 + d), a3);
    }
    if (tail) {
      const __m512 qv = _mm512_maskz_loadu_ps(tail, q + full);
      a0 = _mm512_fmadd_ps(qv, L::tail(r0 + full, tail), a0);
      a1 = _mm512_fmadd_ps(qv, L::tail(r1 + full, tail), a1);
      a2 = _mm512_fmadd_ps(qv, L::tail(r2 + full, tail), a2);
      a3 = _mm512_fmadd_ps(qv, L::tail(r3 + full, tail), a3);
    }
    _mm_storeu_ps(out + i, reduce4_ps(a0, a1, a2, a3));
  }
  for (; i < n; ++i) {
    const typename L::T* r = row_at(i);
    __m512 a = _mm512_setzero_ps();
    for (size_t d = 0; d < full; d += W) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), L::full(r + d), a);
    if (tail) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, q + full), L::tail(r + full, tail), a);
    out[i] = _mm512_reduce_add_ps(a);
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
void dot_i8(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
            int32_t* out) {
  const __m512i ones = _mm512_set1_epi16(1);
  dot_i8_with(q, base, idx, n, dim, out, [&](__m512i acc, __m512i uq, __m512i sx) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(uq, sx), ones));
  });
}
void dot_i8_blocked(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                    int32_t* out) {
  const __m512i ones = _mm512_set1_epi16(1);
  dot_i8_blocked_with(q, blocked, blocks, groups, out, [&](__m512i acc, __m512i uq, __m512i sx) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(uq, sx), ones));
  });
}
void dot_u4_blocked(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups, int32_t* out) {
  const __m512i ones = _mm512_set1_epi16(1);
  dot_u4_blocked_with(w, blocked, blocks, groups, out, [&](__m512i acc, __m512i ux, __m512i sw) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(ux, sw), ones));
  });
}

// Sixteen compared into a mask and their positions compress-stored.
size_t above_i32(const int32_t* x, size_t n, int32_t bound, uint32_t* positions) {
  const __m512i b = _mm512_set1_epi32(bound), step = _mm512_set1_epi32(16);
  __m512i at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  size_t count = 0;
  for (size_t i = 0; i < n; i += 16, at = _mm512_add_epi32(at, step)) {
    const __mmask16 in = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __mmask16 gt = _mm512_mask_cmpgt_epi32_mask(in, _mm512_maskz_loadu_epi32(in, x + i), b);
    _mm512_mask_compressstoreu_epi32(positions + count, gt, at);
    count += size_t(__builtin_popcount(gt));
  }
  return count;
}

// Scores as a small matrix product: rows are packed 16 at a time in
// dimension-major order, so one load feeds eight FMAs (one per query, the
// query element broadcast) and sums need no horizontal reduction.
void dot_f32_multi(const float* queries, size_t nq, const float* rows, size_t n, size_t dim,
                   float* out) {
  constexpr size_t Q = 8;
  thread_local std::vector<float> packed;
  const size_t blocks = pack_rows<W>(rows, n, dim, packed);
  for (size_t b = 0; b < blocks; ++b) {
    const float* pb = packed.data() + b * dim * W;
    const size_t r0 = b * W;
    const __mmask16 keep = n - r0 >= W ? __mmask16(0xFFFF) : __mmask16((1u << (n - r0)) - 1u);
    size_t j = 0;
    for (; j + Q <= nq; j += Q) {
      const float* q = queries + j * dim;
      __m512 acc[Q];
      for (size_t g = 0; g < Q; ++g) acc[g] = _mm512_setzero_ps();
      for (size_t d = 0; d < dim; ++d) {
        const __m512 v = _mm512_loadu_ps(pb + d * W);
        for (size_t g = 0; g < Q; ++g) acc[g] = _mm512_fmadd_ps(_mm512_set1_ps(q[g * dim + d]), v, acc[g]);
      }
      for (size_t g = 0; g < Q; ++g) _mm512_mask_storeu_ps(out + (j + g) * n + r0, keep, acc[g]);
    }
    for (; j < nq; ++j) {
      const float* q = queries + j * dim;
      __m512 acc = _mm512_setzero_ps();
      for (size_t d = 0; d < dim; ++d) acc = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_loadu_ps(pb + d * W), acc);
      _mm512_mask_storeu_ps(out + j * n + r0, keep, acc);
    }
  }
}

void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + W <= n; i += W)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(out + i, m,
                             _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, in + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

}  // namespace

const Kernels& avx512_kernels() {
  static const Kernels k{Level::avx512, "avx512", dot_f32, dot_f16, dot_i8, dot_i8_blocked,
                         dot_u4_blocked, above_i32, dot_f32_multi, f32_to_f16};
  return k;
}

}  // namespace engine::simd
