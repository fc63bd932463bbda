// The binned forest walk (binned.hpp), built for AVX-512 with VBMI (byte
// permutes across two registers) and BITALG (a bit picked per lane):
//
//   split outcomes of one row for all of a tree's splits, as a 64-bit word:
//     W = bins[column[i]] > rank[i]        vpermi2b per 128 bin columns, vpcmpub
//   8 rows (one per 64-bit lane) step together:
//     node = W[node] ? right[node] : left[node]      vpshufbitqmb, 2 vpermi2b
//   and the leaf's value comes from 64 values held in 8 registers.
//
// A tree's tables are loaded once per 64 rows; nothing in a step touches
// memory, so the walk is bound by the permute port and not by the load
// chains that limit the general walk (walk.hpp). Forests without a binned
// form take that general walk.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "trees/binned.hpp"
#include "trees/eval.hpp"
#include "trees/keys.hpp"
#include "trees/walk.hpp"

namespace engine::trees {
namespace {

constexpr size_t kBlockRows = 64;  // rows binned, then walked by every tree

// The number of a feature's thresholds at or below `key` (a number's key,
// so below the padding): how many blocks end at or below it, then how many
// keys of the next block are.
inline uint32_t bin_of(const KeyBlock* blocks, uint32_t key) {
  const __m512i k = _mm512_set1_epi32(int(key));
  const uint32_t block = uint32_t(__builtin_popcount(
      _mm512_cmple_epu32_mask(_mm512_load_si512(blocks[0].key), k)));
  const uint32_t within = uint32_t(__builtin_popcount(
      _mm512_cmple_epu32_mask(_mm512_load_si512(blocks[1 + block].key), k)));
  return 16 * block + within;
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

// bin_rows for a full block into column-major bins (64 bytes per column),
// 16 rows per instruction, with the feature's 256 keys in registers: a
// binary search of the pivots picks each lane's block, then one permute
// per key position fetches every lane's k-th block key to count those at
// or below. values holds the block column-major (transpose_block).
// Gathers, a binary search within the block (eight two-table permutes per
// step), and a scalar search per lane all measured slower.
void bin_block(const BinnedForest& b, const float* values, uint8_t* columns) {
  for (const BinFeature& bf : b.features) {
    const float* x = values + size_t(bf.feature) * kBlockRows;
    const KeyBlock* blocks = b.key_blocks.data() + bf.blocks_at;
    const __m512i pivots = _mm512_load_si512(blocks[0].key);
    __m512i keys[16];  // keys[k]: the k-th key of every block
    for (int k = 0; k < 16; ++k) keys[k] = _mm512_load_si512(blocks[17 + k].key);
    for (size_t q = 0; q < kBlockRows / 16; ++q) {
      const __m512 v = _mm512_load_ps(x + 16 * q);
      // float_key (keys.hpp), 16 at a time.
      const __m512i bits = _mm512_castps_si512(_mm512_add_ps(v, _mm512_setzero_ps()));
      const __m512i key = _mm512_xor_si512(
          _mm512_xor_si512(bits, _mm512_and_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(0x7fffffff))),
          _mm512_set1_epi32(int(0x80000000u)));
      __m512i bin = _mm512_setzero_si512();
      for (int h = 8; h; h >>= 1) {
        const __m512i p = _mm512_permutexvar_epi32(_mm512_add_epi32(bin, _mm512_set1_epi32(h - 1)), pivots);
        bin = _mm512_mask_add_epi32(bin, _mm512_cmple_epu32_mask(p, key), bin, _mm512_set1_epi32(h));
      }
      // Where in its block: how many of the block's 16 keys are at or below.
      __m512i within = _mm512_setzero_si512();
      for (int k = 0; k < 16; ++k)
        within = _mm512_mask_add_epi32(within, _mm512_cmple_epu32_mask(_mm512_permutexvar_epi32(bin, keys[k]), key),
                                       within, _mm512_set1_epi32(1));
      bin = _mm512_add_epi32(_mm512_slli_epi32(bin, 4), within);
      const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
      const __mmask16 zero_or_nan = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(1e-35f), _CMP_NGT_UQ);
      const __m512i missing = _mm512_set1_epi32(kMissingBin);
      _mm_store_si128(reinterpret_cast<__m128i*>(columns + 64 * size_t(bf.column[0]) + 16 * q),
                      _mm512_cvtepi32_epi8(_mm512_mask_mov_epi32(bin, nan, missing)));
      _mm_store_si128(reinterpret_cast<__m128i*>(columns + 64 * size_t(bf.column[1]) + 16 * q),
                      _mm512_cvtepi32_epi8(_mm512_mask_mov_epi32(bin, zero_or_nan, missing)));
    }
  }
}

// Per column of a column-major block, the rows whose value is missing.
void missing_rows(const BinnedForest& b, const uint8_t* columns, uint64_t* missing) {
  for (uint32_t c = 0; c < b.n_columns; ++c)
    missing[c] = _mm512_cmpeq_epi8_mask(_mm512_load_si512(columns + 64 * size_t(c)), _mm512_set1_epi8(char(kMissingBin)));
}

inline uint64_t missing_left_splits(const BinnedTreeInfo& info) {
  return info.n_missing_left >= 64 ? ~uint64_t{0} : (uint64_t{1} << info.n_missing_left) - 1;
}

template <class T>
struct Aligned64 {  // std::allocator with 64-byte alignment, for aligned vector loads
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
  template <class U>
  bool operator!=(const Aligned64<U>&) const { return false; }
};

struct TreeRegisters {
  __m512i column, rank, left0, left1, right0, right1;
  __m512d values[8];
};

inline TreeRegisters load_tree(const BinnedTree& t) {
  TreeRegisters r;
  r.column = _mm512_load_si512(t.column);
  r.rank = _mm512_load_si512(t.rank);
  r.left0 = _mm512_load_si512(t.left);
  r.left1 = _mm512_load_si512(t.left + 64);
  r.right0 = _mm512_load_si512(t.right);
  r.right1 = _mm512_load_si512(t.right + 64);
  for (int i = 0; i < 8; ++i) r.values[i] = _mm512_load_pd(t.values + 8 * i);
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

// The 64 x 64 bit transpose: in[i] bit r (split i, row r) becomes out lane r
// of register r / 8, bit i: bytes transposed within 8 x 8 blocks, bits within
// each byte block (GF2P8AFFINEQB with the identity as data), then the blocks.
inline void transpose_bits(const uint64_t* in, __m512i* out) {
  const __m512i identity = _mm512_set1_epi64(0x8040201008040201);
  __m512i v[8];
  for (int a = 0; a < 8; ++a)  // v[a] lane b byte j: rows 8b + j, splits 8a .. 8a + 7
    v[a] = _mm512_gf2p8affine_epi64_epi8(identity, transpose_bytes(_mm512_load_si512(in + 8 * a), true), 0);
  // 8 x 8 transpose of the 64-bit lanes across the registers: t[b] lane a = v[a] lane b.
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
    s[k] = _mm512_shuffle_i64x2(t[k], t[k + 4], 0x88);
    s[k + 4] = _mm512_shuffle_i64x2(t[k], t[k + 4], 0xdd);
  }
  for (int b = 0; b < 8; ++b) out[b] = transpose_bytes(s[b], false);
}

// Split outcomes of rows [0, 8G) from row-major bins (one gather per row).
template <int G>
inline void outcomes_by_row(const BinnedForest& b, const TreeRegisters& t, const uint64_t* masks,
                            uint64_t missing_left, const uint8_t* bins, __m512i* w) {
  alignas(64) uint64_t words[8 * G];
  for (int r = 0; r < 8 * G; ++r) words[r] = outcomes(t, bins + r * b.row_bytes, masks, b.n_chunks, missing_left);
  for (int g = 0; g < G; ++g) w[g] = _mm512_load_si512(words + 8 * g);
}

// Split outcomes of 64 rows from column-major bins (64 bytes per column):
// one compare per split, then the transpose.
inline void outcomes_by_split(const BinnedTree& tree, const BinnedTreeInfo& info, const uint8_t* columns,
                              const uint64_t* missing, __m512i* w) {
  alignas(64) uint64_t right[64];
  const auto compare = [&](uint32_t i) {
    return _mm512_cmplt_epu8_mask(_mm512_set1_epi8(char(tree.rank[i])),
                                  _mm512_load_si512(columns + 64 * size_t(tree.full_column[i])));
  };
  uint32_t i = 0;
  for (; i < info.n_missing_left; ++i) right[i] = compare(i) & ~missing[tree.full_column[i]];
  for (; i < info.n_splits; ++i) right[i] = compare(i);
  for (; i < 64; ++i) right[i] = 0;
  transpose_bits(right, w);
}

// A deep tree's bottom slots (binned.hpp): the outcome words of group g
// (0: level 1, 1-2: level 2) for a full block, w[g][0 .. 8).
inline void bottom_by_split(const BinnedBottom& bb, const uint8_t* columns, const uint64_t* missing,
                            __m512i (*w)[8]) {
  alignas(64) uint64_t right[64];
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 8; ++i) _mm512_store_si512(right + 8 * i, _mm512_setzero_si512());
    const auto compare = [&](const BottomSlot& s) {
      return _mm512_cmplt_epu8_mask(_mm512_set1_epi8(char(s.rank)), _mm512_load_si512(columns + 64 * size_t(s.column)));
    };
    uint32_t k = 0;
    for (; k < bb.n_missing_left[g]; ++k) {
      const BottomSlot& s = bb.slots[g][k];
      right[s.slot] = compare(s) & ~missing[s.column];
    }
    for (; k < bb.n_slots[g]; ++k) right[bb.slots[g][k].slot] = compare(bb.slots[g][k]);
    transpose_bits(right, w[g]);
  }
}

// Leaf values of 8 lanes at exits (byte 0: kBinnedLeaf + j) of a deep tree:
// two more levels from the bottom's outcome words w1, w2a, w2b.
inline __m512d bottom_values(const BinnedBottom& bb, __m512i exit, __m512i w1, __m512i w2a, __m512i w2b) {
  const __m512i j = _mm512_and_si512(exit, _mm512_set1_epi8(63));
  const __m512i one = _mm512_set1_epi8(1);
  const __m512i twice = _mm512_add_epi8(j, j);
  const __m512i s2 = _mm512_mask_add_epi8(twice, _mm512_bitshuffle_epi64_mask(w1, j), twice, one);  // 0..127
  const __mmask64 high = _mm512_test_epi8_mask(s2, _mm512_set1_epi8(64));
  const __mmask64 b2 = (_mm512_bitshuffle_epi64_mask(w2a, s2) & ~high) | (_mm512_bitshuffle_epi64_mask(w2b, s2) & high);
  const __m512i leaf = _mm512_mask_add_epi8(_mm512_add_epi8(s2, s2), b2, _mm512_add_epi8(s2, s2), one);
  return _mm512_i64gather_pd(_mm512_and_si512(leaf, _mm512_set1_epi64(255)), bb.values, 8);
}

// One tree over G groups of 8 rows: the groups walk side by side (one alone
// would wait on each step's permute latency), then add their leaf values to
// acc, the tree's output column of the block.
template <int G, bool ByRow>
inline void walk_tree(const BinnedForest& b, size_t ti, const uint8_t* bins, const uint64_t* missing,
                      double* acc) {
  const BinnedTreeInfo& info = b.info[ti];
  const TreeRegisters t = load_tree(b.trees[ti]);
  __m512i w[G], node[G];
  if constexpr (ByRow)
    outcomes_by_row<G>(b, t, b.chunk_masks.data() + info.chunk_mask_at, missing_left_splits(info), bins, w);
  else
    outcomes_by_split(b.trees[ti], info, bins, missing, w);
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) node[g] = _mm512_set1_epi8(char(info.root));
  for (uint32_t s = 0; s < info.depth; ++s) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const __mmask64 right = _mm512_bitshuffle_epi64_mask(w[g], node[g]);
      node[g] = _mm512_mask_mov_epi8(_mm512_permutex2var_epi8(t.left0, node[g], t.left1), right,
                                     _mm512_permutex2var_epi8(t.right0, node[g], t.right1));
    }
  }
  __m512i bottom[3][8];
  if constexpr (!ByRow)  // deep forests walk by row only through the general walk
    if (info.bottom >= 0) bottom_by_split(b.bottoms[size_t(info.bottom)], bins, missing, bottom);
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    const __m512d v = !ByRow && info.bottom >= 0 ? bottom_values(b.bottoms[size_t(info.bottom)], node[g], bottom[0][g],
                                                       bottom[1][g], bottom[2][g])
                                       : leaf_values(t, node[g]);
    double* a = acc + 8 * g;
    if (info.f32)  // XGBoost's float sum: float(acc) + float(leaf), widened back
      _mm512_storeu_pd(a, _mm512_cvtps_pd(_mm256_add_ps(_mm512_cvtpd_ps(_mm512_loadu_pd(a)), _mm512_cvtpd_ps(v))));
    else
      _mm512_storeu_pd(a, _mm512_add_pd(_mm512_loadu_pd(a), v));
  }
}

// K trees of one row: split outcomes, then the trees walked side by side in
// scalar registers, each as many steps as the deepest, and the leaves added
// in tree order.
template <size_t K>
inline void walk_row_trees(const BinnedForest& b, size_t t0, const uint8_t* row, double* acc) {
  uint64_t w[K];
  uint32_t node[K], depth = 0;
#pragma GCC unroll 8
  for (size_t k = 0; k < K; ++k) {
    const BinnedTreeInfo& info = b.info[t0 + k];
    const BinnedTree& tree = b.trees[t0 + k];
    TreeRegisters t;
    t.column = _mm512_load_si512(tree.column);
    t.rank = _mm512_load_si512(tree.rank);
    w[k] = outcomes(t, row, b.chunk_masks.data() + info.chunk_mask_at, b.n_chunks, missing_left_splits(info));
    node[k] = info.root;
    depth = std::max<uint32_t>(depth, info.depth);
  }
  for (uint32_t s = 0; s < depth; ++s) {
    uint32_t all = kBinnedLeaf;  // stays set while every tree is at a leaf
#pragma GCC unroll 8
    for (size_t k = 0; k < K; ++k) {
      node[k] = b.trees[t0 + k].child[2 * node[k] + ((w[k] >> (node[k] & 63)) & 1)];
      all &= node[k];
    }
    if (all) break;
  }
  // The sum stays in a register while consecutive trees add to one output.
  uint32_t output = b.info[t0].output;
  double sum = acc[output];
  for (size_t k = 0; k < K; ++k) {
    const BinnedTreeInfo& info = b.info[t0 + k];
    if (info.output != output) {
      acc[output] = sum;
      output = info.output;
      sum = acc[output];
    }
    const double v = b.trees[t0 + k].values[node[k] - kBinnedLeaf];
    sum = info.f32 ? double(float(sum) + float(v)) : sum + v;
  }
  acc[output] = sum;
}

// Rows of a small batch, one at a time, 8 trees side by side (the byte
// permutes' lanes would be 7/8 idle).
void walk_rows(const BinnedForest& b, size_t tb, size_t te, const uint8_t* bins, size_t n, double* acc,
               size_t n_out) {
  for (size_t r = 0; r < n; ++r) {
    const uint8_t* row = bins + r * b.row_bytes;
    double* a = acc + r * n_out;
    size_t t0 = tb;
    for (; t0 + 8 <= te; t0 += 8) walk_row_trees<8>(b, t0, row, a);
    for (; t0 < te; ++t0) walk_row_trees<1>(b, t0, row, a);
  }
}

// The next block's rows, fetched into L2 a few cache lines per tree while
// this block walks: a large batch streams from memory otherwise, and
// binning would wait on every row (LightGBM 300 features: 15 % of the time).
struct Prefetch {
  const char* rows = nullptr;
  size_t row_bytes = 0, stride_bytes = 0, n_rows = 0, next = 0, per_tree = 0;
  void step() {
    const size_t lines = (row_bytes + 63) / 64;
    for (size_t i = 0; i < per_tree && next < n_rows * lines; ++i, ++next)
      _mm_prefetch(rows + next / lines * stride_bytes + next % lines * 64, _MM_HINT_T1);
  }
};

template <int G, bool ByRow = true>
void walk_trees(const BinnedForest& b, size_t tb, size_t te, const uint8_t* bins, const uint64_t* missing,
                double* columns, Prefetch prefetch = {}) {
  for (size_t ti = tb; ti < te; ++ti) {
    prefetch.step();
    walk_tree<G, ByRow>(b, ti, bins, missing, columns + b.info[ti].output * kBlockRows);
  }
}

void accumulate_binned(const Forest& f, const float* X, size_t n, size_t stride, double* acc, size_t tb,
                       size_t te) {
  const BinnedForest& b = f.binned();
  if (!b.usable) return accumulate(f, X, n, stride, acc, tb, te);
  const size_t n_out = f.n_outputs();
  thread_local std::vector<uint8_t> bins;
  thread_local std::vector<double> columns;  // n_out x kBlockRows
  thread_local std::vector<uint64_t> missing;  // per bin column of a full block
  thread_local std::vector<float, Aligned64<float>> values;  // a full block, column-major
  values.resize(size_t(f.n_features()) * kBlockRows);
  bins.resize(kBlockRows * b.row_bytes + 64);  // + 64: room to align
  columns.resize(n_out * kBlockRows);
  missing.resize(b.n_columns + 1);
  for (size_t r0 = 0; r0 < n; r0 += kBlockRows) {
    const size_t m = std::min(kBlockRows, n - r0), groups = (m + 7) / 8;
    uint8_t* block = bins.data() + (-reinterpret_cast<uintptr_t>(bins.data()) & 63);
    if (m == kBlockRows) {
      transpose_block(X + r0 * stride, stride, f.n_features(), values.data());
      bin_block(b, values.data(), block);
      missing_rows(b, block, missing.data());
    } else if (!b.bottoms.empty()) {
      // Fewer rows than a block, of a forest with deep trees: the general walk is faster.
      accumulate(f, X + r0 * stride, m, stride, acc + r0 * n_out, tb, te);
      continue;
    } else {
      bin_rows(b, X + r0 * stride, m, stride, block, b.row_bytes, 1);
    }
    if (m < 8) {
      walk_rows(b, tb, te, block, m, acc + r0 * n_out, n_out);
      continue;
    }
    for (size_t o = 0; o < n_out; ++o)
      for (size_t r = 0; r < m; ++r) columns[o * kBlockRows + r] = acc[(r0 + r) * n_out + o];
    switch (m == kBlockRows ? 0 : groups) {
      case 1: walk_trees<1>(b, tb, te, block, nullptr, columns.data()); break;
      case 2: walk_trees<2>(b, tb, te, block, nullptr, columns.data()); break;
      case 3: walk_trees<3>(b, tb, te, block, nullptr, columns.data()); break;
      case 4: walk_trees<4>(b, tb, te, block, nullptr, columns.data()); break;
      case 5: walk_trees<5>(b, tb, te, block, nullptr, columns.data()); break;
      case 6: walk_trees<6>(b, tb, te, block, nullptr, columns.data()); break;
      case 7: walk_trees<7>(b, tb, te, block, nullptr, columns.data()); break;
      case 8: walk_trees<8>(b, tb, te, block, nullptr, columns.data()); break;
      default: {  // a full block: column-major bins
        Prefetch next;
        if (te > tb && r0 + kBlockRows < n) {
          next.rows = reinterpret_cast<const char*>(X + (r0 + kBlockRows) * stride);
          next.row_bytes = f.n_features() * sizeof(float);
          next.stride_bytes = stride * sizeof(float);
          next.n_rows = std::min(kBlockRows, n - r0 - kBlockRows);
          next.per_tree = (next.n_rows * ((next.row_bytes + 63) / 64) + te - tb - 1) / (te - tb);
        }
        walk_trees<8, false>(b, tb, te, block, missing.data(), columns.data(), next);
      }
    }
    for (size_t o = 0; o < n_out; ++o)
      for (size_t r = 0; r < m; ++r) acc[(r0 + r) * n_out + o] = columns[o * kBlockRows + r];
  }
}

}  // namespace

const EvalKernels& avx512_vbmi_eval() {
  static const EvalKernels table{simd::Level::avx512, "avx512-vbmi", &accumulate_binned};
  return table;
}

}  // namespace engine::trees
