// The AVX-512 table with the int8 dot product on VNNI (vpdpbusd: 64 u8 x s8
// products summed into 16 int32 lanes in one instruction). Chosen instead of
// the plain AVX-512 table when the CPU has AVX512_VNNI.
#include <immintrin.h>

#include "simd/dot_i8_avx512.hpp"
#include "simd/kernels.hpp"

namespace engine::simd {
namespace {

void dot_i8_vnni(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
                 int32_t* out) {
  dot_i8_with(q, base, idx, n, dim, out, [](__m512i acc, __m512i uq, __m512i sx) {
    return _mm512_dpbusd_epi32(acc, uq, sx);
  });
}

void dot_i8_blocked_vnni(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                         int32_t* out) {
  dot_i8_blocked_with(q, blocked, blocks, groups, out, [](__m512i acc, __m512i uq, __m512i sx) {
    return _mm512_dpbusd_epi32(acc, uq, sx);
  });
}

void dot_u4_blocked_vnni(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups, int32_t* out) {
  dot_u4_blocked_with(w, blocked, blocks, groups, out, [](__m512i acc, __m512i ux, __m512i sw) {
    return _mm512_dpbusd_epi32(acc, ux, sw);
  });
}

}  // namespace

const Kernels& avx512_vnni_kernels() {
  static const Kernels k = [] {
    Kernels t = avx512_kernels();
    t.name = "avx512_vnni";
    t.dot_i8 = dot_i8_vnni;
    t.dot_i8_blocked = dot_i8_blocked_vnni;
    t.dot_u4_blocked = dot_u4_blocked_vnni;
    return t;
  }();
  return k;
}

}  // namespace engine::simd
