// Split outcomes for the binned walk (binned.hpp): per row and tree, one
// 64-bit word with bit i set iff split i sends the row right, from
// row-major bins (a byte permute per row) or a column-major block (a
// compare per split, then a bit transpose); and leaf values from the walk's
// end nodes. For one AVX-512 VBMI translation unit (binned_avx512.cpp).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "trees/binned.hpp"

namespace engine::trees {
namespace {  // internal linkage: the one translation unit keeps its own copy

struct TreeRegisters {
  __m512i column, rank, left0, left1, right0, right1;
  __m512d values[8];     // a tree that sums in double
  __m512 values_f32[4];  // in float
};

inline TreeRegisters load_tree(const BinnedTree& t, bool f32) {
  TreeRegisters r;
  r.column = _mm512_load_si512(t.column);
  r.rank = _mm512_load_si512(t.rank);
  r.left0 = _mm512_load_si512(t.left);
  r.left1 = _mm512_load_si512(t.left + 64);
  r.right0 = _mm512_load_si512(t.right);
  r.right1 = _mm512_load_si512(t.right + 64);
  if (f32)
    for (int i = 0; i < 4; ++i) r.values_f32[i] = _mm512_load_ps(t.values.f32 + 16 * i);
  else
    for (int i = 0; i < 8; ++i) r.values[i] = _mm512_load_pd(t.values.f64 + 8 * i);
  return r;
}

// The split outcomes of one row: bit i set iff split i sends the row right.
inline uint64_t outcomes(const TreeRegisters& t, const uint8_t* row, const uint64_t* chunk_masks,
                         uint32_t n_chunks, uint64_t missing_left) {
  __m512i bins = _mm512_permutex2var_epi8(_mm512_loadu_si512(row), t.column, _mm512_loadu_si512(row + 64));
  for (uint32_t c = 1; c < n_chunks; ++c) {
    const uint8_t* chunk = row + 128 * c;
    bins = _mm512_mask_mov_epi8(
        bins, chunk_masks[c - 1],
        _mm512_permutex2var_epi8(_mm512_loadu_si512(chunk), t.column, _mm512_loadu_si512(chunk + 64)));
  }
  const __mmask64 missing_goes_left = _mm512_mask_cmpeq_epi8_mask(missing_left, bins, _mm512_set1_epi8(char(kMissingBin)));
  return _mm512_mask_cmpgt_epu8_mask(~missing_goes_left, bins, t.rank);
}

// Leaf values of 8 lanes; byte 0 of each lane holds kBinnedLeaf + j.
inline __m512d leaf_values(const TreeRegisters& t, __m512i node) {
  const __m512i j = _mm512_and_si512(node, _mm512_set1_epi64(63));
  const __mmask8 b4 = _mm512_test_epi64_mask(j, _mm512_set1_epi64(16));
  const __mmask8 b5 = _mm512_test_epi64_mask(j, _mm512_set1_epi64(32));
  const __m512d v0 = _mm512_permutex2var_pd(t.values[0], j, t.values[1]);
  const __m512d v1 = _mm512_permutex2var_pd(t.values[2], j, t.values[3]);
  const __m512d v2 = _mm512_permutex2var_pd(t.values[4], j, t.values[5]);
  const __m512d v3 = _mm512_permutex2var_pd(t.values[6], j, t.values[7]);
  return _mm512_mask_mov_pd(_mm512_mask_mov_pd(v0, b4, v1), b5, _mm512_mask_mov_pd(v2, b4, v3));
}

// The same for a float tree: the 32-bit permutes read j from the low half
// of each lane, and the lanes' low halves are the 8 values.
inline __m256 leaf_values_f32(const TreeRegisters& t, __m512i node) {
  const __m512i j = _mm512_and_si512(node, _mm512_set1_epi64(63));
  const __mmask16 b5 = _mm512_test_epi32_mask(j, _mm512_set1_epi32(32));
  const __m512 v = _mm512_mask_mov_ps(_mm512_permutex2var_ps(t.values_f32[0], j, t.values_f32[1]), b5,
                                      _mm512_permutex2var_ps(t.values_f32[2], j, t.values_f32[3]));
  return _mm256_castsi256_ps(_mm512_cvtepi64_epi32(_mm512_castps_si512(v)));
}

// 8 x 8 transpose of the bytes of each 64-bit lane, and the same with each
// lane's bytes reversed on the way (for transpose_bits).
inline __m512i transpose_bytes(__m512i x, bool reverse) {
  alignas(64) static const auto index = [] {
    struct { uint8_t plain[64], reversed[64]; } t;
    for (int lane = 0; lane < 8; ++lane)
      for (int i = 0; i < 8; ++i) {
        t.plain[8 * lane + i] = uint8_t(8 * i + lane);
        t.reversed[8 * lane + 7 - i] = uint8_t(8 * i + lane);
      }
    return t;
  }();
  return _mm512_permutexvar_epi8(_mm512_load_si512(reverse ? index.reversed : index.plain), x);
}

// out[b] lane a = v[a] lane b: the 8 x 8 transpose of 64-bit lanes across
// registers.
inline void transpose_qwords(const __m512i* v, __m512i* out) {
  __m512i s[8], t[8];
  for (int a = 0; a < 8; a += 2) {
    s[a] = _mm512_unpacklo_epi64(v[a], v[a + 1]);
    s[a + 1] = _mm512_unpackhi_epi64(v[a], v[a + 1]);
  }
  for (int a = 0; a < 8; a += 4)
    for (int k = 0; k < 2; ++k) {
      t[a + k] = _mm512_shuffle_i64x2(s[a + k], s[a + k + 2], 0x88);
      t[a + k + 2] = _mm512_shuffle_i64x2(s[a + k], s[a + k + 2], 0xdd);
    }
  for (int k = 0; k < 4; ++k) {
    out[k] = _mm512_shuffle_i64x2(t[k], t[k + 4], 0x88);
    out[k + 4] = _mm512_shuffle_i64x2(t[k], t[k + 4], 0xdd);
  }
}

// The 64 x 64 bit transpose: in[i] bit r (split i, row r) becomes out lane r
// of register r / 8, bit i: bytes transposed within 8 x 8 blocks, bits within
// each byte block (GF2P8AFFINEQB with the identity as data), then the blocks.
inline void transpose_bits(const uint64_t* in, __m512i* out) {
  const __m512i identity = _mm512_set1_epi64(0x8040201008040201);
  __m512i v[8], s[8];
  for (int a = 0; a < 8; ++a)  // v[a] lane b byte j: rows 8b + j, splits 8a .. 8a + 7
    v[a] = _mm512_gf2p8affine_epi64_epi8(identity, transpose_bytes(_mm512_load_si512(in + 8 * a), true), 0);
  transpose_qwords(v, s);  // s[b] lane a = v[a] lane b
  for (int b = 0; b < 8; ++b) out[b] = transpose_bytes(s[b], false);
}

// Rows [8g, 8g + 8) of an output's block column (sums_to_columns) += v, in
// the head's precision (XGBoost's float sums are held as floats).
inline void add_leaves(__m512d v, double* column, int g) {
  _mm512_storeu_pd(column + 8 * g, _mm512_add_pd(_mm512_loadu_pd(column + 8 * g), v));
}
inline void add_leaves(__m256 v, double* column, int g) {
  float* sums = reinterpret_cast<float*>(column) + 8 * g;
  _mm256_storeu_ps(sums, _mm256_add_ps(_mm256_loadu_ps(sums), v));
}

// Split outcomes of rows [0, 8G) from row-major bins (one gather per row).
template <int G>
inline void outcomes_by_row(const BinnedForest& b, const TreeRegisters& t, const uint64_t* masks,
                            uint64_t missing_left, const uint8_t* bins, __m512i* w) {
  alignas(64) uint64_t words[8 * G];
  for (int r = 0; r < 8 * G; ++r) words[r] = outcomes(t, bins + r * b.row_bytes, masks, b.n_chunks, missing_left);
  for (int g = 0; g < G; ++g) w[g] = _mm512_load_si512(words + 8 * g);
}

// Per split of a tree, the rows of a column-major block it sends right: one
// compare per split (the bottom's slots of a deep tree too). Computed for
// every block of a visit before any is transposed, so that the transposes'
// loads find these stores long retired (a load spanning 8 recent stores
// cannot be forwarded and waits for them).
struct alignas(64) SplitMasks {
  uint64_t top[64];
  uint64_t bottom[3][64];
};

inline void compare_splits(const BinnedTree& tree, const BinnedTreeInfo& info, const BinnedBottom* bb,
                           const uint8_t* columns, SplitMasks& m) {
  const auto compare = [&](uint8_t rank, uint32_t column) {
    return _mm512_cmplt_epu8_mask(_mm512_set1_epi8(char(rank)), _mm512_load_si512(columns + 64 * size_t(column)));
  };
  // In whole groups of 8 (the walk never reads the bits past n_splits): a
  // loop exit every 8 splits mispredicts less often than one per split count.
  const uint32_t n = (uint32_t(info.n_splits) + 7) & ~7u;
  for (uint32_t i = 0; i < n; i += 8) {
#pragma GCC unroll 8
    for (uint32_t k = i; k < i + 8; ++k) m.top[k] = compare(tree.rank[k], tree.block_column[k]);
  }
  if (!bb) return;
  // Slots without a split keep stale bits: the leaves below them hold the
  // same value on either side (binned.hpp).
  for (int g = 0; g < 3; ++g)
    for (uint32_t k = 0; k < bb->n_slots[g]; ++k) {
      const BottomSlot& s = bb->slots[g][k];
      m.bottom[g][s.slot] = compare(s.rank, s.block_column);
    }
}

// The leaves (index into BinnedBottom::values) of 8 lanes at exits (byte 0:
// kBinnedLeaf + j) of a deep tree: two more levels from the bottom's outcome
// words w1, w2a, w2b.
inline __m512i bottom_leaves(__m512i exit, __m512i w1, __m512i w2a, __m512i w2b) {
  const __m512i j = _mm512_and_si512(exit, _mm512_set1_epi8(63));
  const __m512i one = _mm512_set1_epi8(1);
  const __m512i twice = _mm512_add_epi8(j, j);
  const __m512i s2 = _mm512_mask_add_epi8(twice, _mm512_bitshuffle_epi64_mask(w1, j), twice, one);  // 0..127
  const __mmask64 high = _mm512_test_epi8_mask(s2, _mm512_set1_epi8(64));
  const __mmask64 b2 = (_mm512_bitshuffle_epi64_mask(w2a, s2) & ~high) | (_mm512_bitshuffle_epi64_mask(w2b, s2) & high);
  const __m512i leaf = _mm512_mask_add_epi8(_mm512_add_epi8(s2, s2), b2, _mm512_add_epi8(s2, s2), one);
  return _mm512_and_si512(leaf, _mm512_set1_epi64(255));
}

}  // namespace
}  // namespace engine::trees
