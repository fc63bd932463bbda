// Rows to bins for the binned walk (binned.hpp): for one AVX-512 VBMI
// translation unit (binned_avx512.cpp), like walk.hpp for the general walk.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "trees/binned.hpp"
#include "trees/keys.hpp"

namespace engine::trees {
namespace {  // internal linkage: the one translation unit keeps its own copy

constexpr size_t kBlockRows = 64;  // rows binned, then walked by every tree

// The number of a feature's thresholds at or below `key` (a number's key,
// so below the padding): how many runs end at or below it, then how many
// keys of the next run are.
inline uint32_t bin_of(const KeyBlock* blocks, uint32_t key) {
  const __m512i k = _mm512_set1_epi32(int(key));
  const uint32_t run = uint32_t(__builtin_popcount(_mm512_cmple_epu32_mask(_mm512_load_si512(blocks[0].key), k)) +
                                __builtin_popcount(_mm512_cmple_epu32_mask(_mm512_load_si512(blocks[1].key), k)));
  const uint32_t* keys = blocks[2].key + kKeyRun * run;
  const uint32_t within = uint32_t(__builtin_popcount(
      _mm256_cmple_epu32_mask(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys)), _mm256_set1_epi32(int(key)))));
  return kKeyRun * run + within;
}

// Rows [0, n) of X into bins, one byte per bin column: the feature's bin,
// or kMissingBin. Row r's column c goes to bins[r * row_step + c * column_step].
// Feature by feature, so that its 17 key blocks stay in L1 for every row.
// Partial blocks and small batches; full blocks take bin_block.
void bin_rows(const BinnedForest& b, const float* X, size_t n, size_t stride, uint8_t* bins, size_t row_step,
              size_t column_step) {
  for (const BinFeature& bf : b.features) {
    const KeyBlock* blocks = b.key_blocks.data() + bf.blocks_at;
    uint8_t* nan_missing = bins + bf.column[0] * column_step;
    uint8_t* zero_missing = bins + bf.column[1] * column_step;
    for (size_t r = 0; r < n; ++r) {
      const float v = X[r * stride + bf.feature];
      const uint8_t bin = uint8_t(bin_of(blocks, float_key(v)));
      nan_missing[r * row_step] = v != v ? kMissingBin : bin;
      zero_missing[r * row_step] = std::fabs(v) > 1e-35f ? bin : kMissingBin;
    }
  }
}

// 16 x 16 float transpose: r[i] lane j becomes r[j] lane i.
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 16; i += 8)
    for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_shuffle_f32x4(u[i + k], u[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_shuffle_f32x4(u[i + k], u[i + k + 4], 0xdd);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_f32x4(t[k], t[k + 8], 0xdd);
  }
}

// A full block of rows, column-major: columns[j * 64 + r] = X[r][j], in
// 16 x 16 tiles (a feature's values read down the rows one at a time cost
// a load each and stalled on the rows' cache lines).
void transpose_block(const float* X, size_t stride, size_t n_features, float* columns) {
  for (size_t f0 = 0; f0 < n_features; f0 += 16) {
    const size_t width = std::min<size_t>(16, n_features - f0);
    const __mmask16 lanes = __mmask16((1u << width) - 1);
    for (size_t r0 = 0; r0 < kBlockRows; r0 += 16) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(lanes, X + (r0 + i) * stride + f0);
      transpose16(r);
      for (size_t j = 0; j < width; ++j) _mm512_store_ps(columns + (f0 + j) * kBlockRows + r0, r[j]);
    }
  }
}

// float_key (keys.hpp), 16 at a time.
inline __m512i float_keys16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
  return _mm512_xor_si512(
      _mm512_xor_si512(bits, _mm512_and_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(0x7fffffff))),
      _mm512_set1_epi32(int(0x80000000u)));
}

// Rows 16q .. 16q + 15 of bf's bin columns: each written twice, row_bytes
// columns apart, missing as kMissingBin, then missing as 0.
inline void store_bins(const BinnedForest& b, const BinFeature& bf, __m512 v, __m512i bin, uint8_t* columns,
                       size_t q) {
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  const __mmask16 zero_or_nan = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(1e-35f), _CMP_NGT_UQ);
  const __m512i missing = _mm512_set1_epi32(kMissingBin);
  const __mmask16 kinds[2] = {nan, zero_or_nan};
  for (int kind = 0; kind < 2; ++kind) {
    uint8_t* high = columns + 64 * size_t(bf.column[kind]) + 16 * q;
    uint8_t* low = high + 64 * size_t(b.row_bytes);
    _mm_store_si128(reinterpret_cast<__m128i*>(high), _mm512_cvtepi32_epi8(_mm512_mask_mov_epi32(bin, kinds[kind], missing)));
    _mm_store_si128(reinterpret_cast<__m128i*>(low), _mm512_cvtepi32_epi8(_mm512_maskz_mov_epi32(~kinds[kind], bin)));
  }
}

// bin_rows for a full block into column-major bins (64 bytes per column),
// 16 rows per instruction, with the feature's 256 keys in registers: a
// binary search of the 32 pivots picks each lane's run, then one two-table
// permute per key position fetches every lane's k-th run key to count those
// at or below. values holds the block column-major (transpose_block). Each
// bin column is written twice, row_bytes columns apart: missing as
// kMissingBin, then missing as 0 (for splits that send missing values left).
// Runs of 8 keys take 13 permutes where runs of 16 took 20 (binning rows of
// 300 features for 500 trees: 1.04 -> 0.85 ns per row-tree); gathers, a
// binary search within the run, and a scalar search per lane all measured
// slower. A feature with at most 8 keys (flags, buckets, small codes: a
// third of the pipeline bench's) compares each key instead: one compare and
// add per key where the search costs 13 permutes whatever the count.
void bin_block(const BinnedForest& b, const float* values, uint8_t* columns) {
  for (const BinFeature& bf : b.features) {
    const float* x = values + size_t(bf.feature) * kBlockRows;
    const KeyBlock* blocks = b.key_blocks.data() + bf.blocks_at;
    if (bf.n_keys <= kKeyRun) {
      const uint32_t* keys = blocks[2].key;  // the keys in order: run 0
      for (size_t q = 0; q < kBlockRows / 16; ++q) {
        const __m512 v = _mm512_load_ps(x + 16 * q);
        const __m512i key = float_keys16(v);
        __m512i bin = _mm512_setzero_si512();
        for (uint32_t k = 0; k < bf.n_keys; ++k)
          bin = _mm512_mask_add_epi32(bin, _mm512_cmple_epu32_mask(_mm512_set1_epi32(int(keys[k])), key), bin,
                                      _mm512_set1_epi32(1));
        store_bins(b, bf, v, bin, columns, q);
      }
      continue;
    }
    const __m512i pivots0 = _mm512_load_si512(blocks[0].key), pivots1 = _mm512_load_si512(blocks[1].key);
    __m512i keys[kKeyRun][2];  // keys[k]: the k-th key of every run
    for (uint32_t k = 0; k < kKeyRun; ++k)
      for (int h = 0; h < 2; ++h) keys[k][h] = _mm512_load_si512(blocks[18 + 2 * k + h].key);
    for (size_t q = 0; q < kBlockRows / 16; ++q) {
      const __m512 v = _mm512_load_ps(x + 16 * q);
      const __m512i key = float_keys16(v);
      __m512i bin = _mm512_setzero_si512();
      for (int h = 16; h; h >>= 1) {
        const __m512i at = _mm512_add_epi32(bin, _mm512_set1_epi32(h - 1));
        const __m512i p = _mm512_permutex2var_epi32(pivots0, at, pivots1);
        bin = _mm512_mask_add_epi32(bin, _mm512_cmple_epu32_mask(p, key), bin, _mm512_set1_epi32(h));
      }
      // Where in its run: how many of the run's keys are at or below.
      __m512i within = _mm512_setzero_si512();
      for (uint32_t k = 0; k < kKeyRun; ++k) {
        const __m512i run_key = _mm512_permutex2var_epi32(keys[k][0], bin, keys[k][1]);
        within = _mm512_mask_add_epi32(within, _mm512_cmple_epu32_mask(run_key, key), within, _mm512_set1_epi32(1));
      }
      store_bins(b, bf, v, _mm512_add_epi32(_mm512_slli_epi32(bin, 3), within), columns, q);
    }
  }
}

}  // namespace
}  // namespace engine::trees
