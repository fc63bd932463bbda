// The kernel table: one implementation per instruction-set level, compiled in
// its own translation unit with its own flags, chosen once at first use.
#pragma once
#include <cstddef>
#include <cstdint>

namespace engine::simd {

enum class Level : int { scalar = 0, avx2 = 1, avx512 = 2 };

// Every kernel writes out[i] = <q, row i>; the caller applies metric terms
// (norms, i8 scales). Rows are row-major with `dim` elements each.
struct Kernels {
  Level level;
  const char* name;
  // With idx == nullptr the rows are base[0..n); otherwise base[idx[0..n)]
  // (re-ranking, posting-list and filtered scans).
  void (*dot_f32)(const float* q, const float* base, const uint32_t* idx, size_t n, size_t dim,
                  float* out);
  void (*dot_f16)(const float* q, const uint16_t* base, const uint32_t* idx, size_t n, size_t dim,
                  float* out);
  // Exact int32 dot products of an int8 query with int8 rows; codes and the
  // query are symmetric-quantised to [-127, 127] (never -128), so every
  // level computes the same integers.
  void (*dot_i8)(const int8_t* q, const int8_t* base, const uint32_t* idx, size_t n, size_t dim,
                 int32_t* out);
  // The same integers for rows in the interleaved layout of i8_blocks.hpp:
  // q holds 4 * groups bytes (zero past dim), out 16 * blocks sums.
  void (*dot_i8_blocked)(const int8_t* q, const int8_t* blocked, size_t blocks, size_t groups,
                         int32_t* out);
  // Exact int32 sums of signed weights w (4 * groups bytes, zero past dim)
  // times unsigned 4-bit codes in the layout of u4_blocks.hpp: out holds
  // 32 * blocks sums.
  void (*dot_u4_blocked)(const int8_t* w, const uint8_t* blocked, size_t blocks, size_t groups,
                         int32_t* out);
  // The positions i < n with x[i] > bound, ascending, into positions; their count.
  size_t (*above_i32)(const int32_t* x, size_t n, int32_t bound, uint32_t* positions);
  // Scores of nq queries against n rows: out is nq x n, row-major. Rows are
  // loaded once per group of queries, so batches cost less per query.
  void (*dot_f32_multi)(const float* queries, size_t nq, const float* rows, size_t n, size_t dim,
                        float* out);
  void (*f32_to_f16)(const float* in, uint16_t* out, size_t n);
};

const Kernels& scalar_kernels();
#if ENGINE_HAVE_X86
const Kernels& avx2_kernels();
const Kernels& avx512_kernels();
const Kernels& avx512_vnni_kernels();  // avx512 with the VNNI int8 dot product
#endif

}  // namespace engine::simd
