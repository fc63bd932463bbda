// Scalar reference kernels: plain loops, compiled without auto-vectorisation.
// Every SIMD level is tested against these.
#include "simd/half.hpp"
#include "simd/i8_blocks.hpp"
#include "simd/kernels.hpp"
#include "simd/u4_blocks.hpp"

namespace engine::simd {
namespace {

float from_f32(float x) { return x; }

template <typename T, typename Load>
void dot_any(const float* q, const T* base, const uint32_t* idx, size_t n, size_t dim, float* out,
             Load load) {
  for (size_t i = 0; i < n; ++i) {
    const T* row = base + (idx ? size_t{idx[i]} : i) * dim;
    float acc = 0.0f;
    for (size_t d = 0; d < dim; ++d) acc += q[d] * load(row[d]);
    out[i] = acc;
  }
}

void dot_f32(const float* q, const float* base, const uint32_t* idx, size_t n, size_t dim,
             float* out) {
  dot_any(q, base, idx, n, dim, out, from_f32);
}
void dot_f16(const float* q, const uint16_t* base, const uint32_t* idx, size_t n, size_t dim,
             float* out) {
  dot_any(q, base, idx, n, dim, out, half_to_float);
}
void dot_i8(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
            int32_t* out) {
  for (size_t i = 0; i < n; ++i) {
    const int8_t* row = base + (idx ? size_t{idx[i]} : i) * dim;
    int32_t acc = 0;
    for (size_t d = 0; d < dim; ++d) acc += int32_t{q[d]} * int32_t{row[d]};
    out[i] = acc;
  }
}
void dot_i8_blocked(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                    int32_t* out) {
  for (size_t b = 0; b < blocks; ++b)
    for (size_t r = 0; r < kI8BlockRows; ++r) {
      int32_t acc = 0;
      for (size_t g = 0; g < groups; ++g)
        for (size_t j = 0; j < 4; ++j)
          acc += int32_t{q[4 * g + j]} * int32_t{blocked[((b * groups + g) * kI8BlockRows + r) * 4 + j]};
      out[b * kI8BlockRows + r] = acc;
    }
}
void dot_u4_blocked(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups, int32_t* out) {
  for (size_t b = 0; b < blocks; ++b)
    for (size_t r = 0; r < kU4BlockRows; ++r) {
      int32_t acc = 0;
      for (size_t g = 0; g < groups; ++g)
        for (size_t j = 0; j < 4; ++j) {
          const uint8_t byte = blocked[(b * groups + g) * 64 + (r % 16) * 4 + j];
          acc += int32_t{w[4 * g + j]} * int32_t(r < 16 ? byte & 15 : byte >> 4);
        }
      out[b * kU4BlockRows + r] = acc;
    }
}
size_t above_i32(const int32_t* x, size_t n, int32_t bound, uint32_t* positions) {
  size_t count = 0;
  for (size_t i = 0; i < n; ++i)
    if (x[i] > bound) positions[count++] = uint32_t(i);
  return count;
}
void dot_f32_multi(const float* queries, size_t nq, const float* rows, size_t n, size_t dim,
                   float* out) {
  for (size_t j = 0; j < nq; ++j) dot_f32(queries + j * dim, rows, nullptr, n, dim, out + j * n);
}
void f32_to_f16(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k{Level::scalar, "scalar", dot_f32, dot_f16, dot_i8, dot_i8_blocked,
                         dot_u4_blocked, above_i32, dot_f32_multi, f32_to_f16};
  return k;
}

}  // namespace engine::simd
