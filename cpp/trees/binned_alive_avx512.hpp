// The binned walk of full blocks as sets of rows (binned.hpp's AliveSteps):
// for one AVX-512 VBMI translation unit (binned_avx512.cpp).
//
// A node's rows are a 64-bit mask per block: its parent's rows that go its
// way, one AND per split (split ids run breadth first, so parents come
// first), for every block of a visit at once. The cost is one step per
// split whatever the depth, on the load, store and integer ports. The
// leaves' masks then become a leaf number per row (leaf_numbers,
// leaf_numbers_by_planes: a bit transpose and GF2P8AFFINEQB), whose value
// byte planes are looked up (add_leaf_values). Sums are added in tree
// order, so they equal the other walks' bit for bit.
//
// It replaced a walk that stepped the 64 rows of a block one level at a
// time, a byte of node id each (6 two-table byte permutes per step, 3 uops
// each on Intel), until the deepest path ended: 14-16 steps for LightGBM's
// 63-leaf trees, whose leaves sit 9 splits deep on average. Pipeline heads
// (1,000 such trees), Forest.predict on random rows, medians: 64 rows
// 122 -> 73 us, 128 rows 206 -> 98-104, 448 rows 665 -> 279-287, 1,024
// rows 1,512 -> 597-612; SurfaceScorer.score on the pipeline's requests
// (50 trees over 500 rows, then 950 over 128) 310 -> 175-195 us.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "trees/binned.hpp"
#include "trees/binned_outcomes_avx512.hpp"

namespace engine::trees {
namespace {  // internal linkage: the one translation unit keeps its own copy

// One node's rows for B blocks (B = 1, 2, 4 or 8), the masks of the visit's
// blocks of a split being B consecutive words.
template <int B>
struct RowSets;
template <>
struct RowSets<1> {
  using V = uint64_t;
  static V all() { return ~uint64_t{0}; }
  static V none() { return 0; }
  static V load(const uint64_t* m) { return *m; }
  static V with(V a, V m) { return a & m; }
  static V without(V a, V m) { return a & ~m; }
};
template <>
struct RowSets<2> {
  using V = __m128i;
  static V all() { return _mm_set1_epi64x(-1); }
  static V none() { return _mm_setzero_si128(); }
  static V load(const uint64_t* m) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(m)); }
  static V with(V a, V m) { return _mm_and_si128(a, m); }
  static V without(V a, V m) { return _mm_andnot_si128(m, a); }
};
template <>
struct RowSets<4> {
  using V = __m256i;
  static V all() { return _mm256_set1_epi64x(-1); }
  static V none() { return _mm256_setzero_si256(); }
  static V load(const uint64_t* m) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m)); }
  static V with(V a, V m) { return _mm256_and_si256(a, m); }
  static V without(V a, V m) { return _mm256_andnot_si256(m, a); }
  static V xor_(V a, V m) { return _mm256_xor_si256(a, m); }
  static __m512i wide(V a) { return _mm512_zextsi256_si512(a); }
};

template <>
struct RowSets<8> {
  using V = __m512i;
  static V all() { return _mm512_set1_epi64(-1); }
  static V none() { return _mm512_setzero_si512(); }
  static V load(const uint64_t* m) { return _mm512_loadu_si512(m); }
  static V with(V a, V m) { return _mm512_and_si512(a, m); }
  static V without(V a, V m) { return _mm512_andnot_si512(m, a); }
  static V xor_(V a, V m) { return _mm512_xor_si512(a, m); }
  static __m512i wide(V a) { return a; }
};

// Leaves 8a .. 8a + 7 of block k (their masks' word k of B): lane l = leaf 8a + l.
template <int B>
inline __m512i leaf_group(const uint64_t* leaves, int a, int k) {
  static_assert(B <= 2, "wider row sets take leaf_numbers_by_planes");
  const uint64_t* at = leaves + size_t(8 * a) * B;
  if constexpr (B == 1) return _mm512_load_si512(at);
  const __m512i pick = _mm512_add_epi64(_mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), _mm512_set1_epi64(k));
  return _mm512_permutex2var_epi64(_mm512_load_si512(at), pick, _mm512_load_si512(at + 8));
}

// GF2P8AFFINEQB matrices: a byte with bit l set (leaf 8a + l) to 8a + l.
// Result bit i is the parity of matrix byte 7 - i AND the byte: bits 0-2
// of the leaf number are bits of l, bits 3-5 those of a (a byte with no
// bit set, no leaf of the group, gives 0).
constexpr uint64_t leaf_number_matrix(int a) {
  const uint64_t rows[8] = {0xAA, 0xCC, 0xF0, a & 1 ? 0xFFu : 0u, a & 2 ? 0xFFu : 0u, a & 4 ? 0xFFu : 0u, 0, 0};
  uint64_t m = 0;
  for (int i = 0; i < 8; ++i) m |= rows[i] << (8 * (7 - i));
  return m;
}
constexpr uint64_t kLeafNumberMatrices[8] = {leaf_number_matrix(0), leaf_number_matrix(1), leaf_number_matrix(2),
                                             leaf_number_matrix(3), leaf_number_matrix(4), leaf_number_matrix(5),
                                             leaf_number_matrix(6), leaf_number_matrix(7)};

// numbers[k] byte r: the leaf row r of block k reaches, from the leaves' row
// masks (B <= 2: a word or two per leaf).
template <int B>
inline void leaf_numbers(const uint64_t* leaves, int groups, size_t blocks, __m512i* numbers) {
  const __m512i identity = _mm512_set1_epi64(0x8040201008040201);
  for (size_t k = 0; k < blocks; ++k) numbers[k] = _mm512_setzero_si512();
  for (int a = 0; a < groups; ++a) {
    const __m512i to_number = _mm512_set1_epi64(int64_t(kLeafNumberMatrices[a]));
    for (size_t k = 0; k < blocks; ++k) {
      // Byte r of lane r / 8: bit l set iff row r reaches leaf 8a + l (transpose_bits' first step).
      const __m512i rows = _mm512_gf2p8affine_epi64_epi8(identity, transpose_bytes(leaf_group<B>(leaves, a, int(k)), true), 0);
      numbers[k] = _mm512_xor_si512(numbers[k], _mm512_gf2p8affine_epi64_epi8(rows, to_number, 0));
    }
  }
}

// The same for 4 or 8 blocks, whose row sets fill a register: bit b of a
// row's leaf number is the XOR of the masks of the leaves with bit b set (a
// row reaches one leaf), 6 planes for every block at once from XORs shared
// by the group bits (3-5) and by the bits within a group (0-2); one
// transpose then puts a block's planes in one register, and
// GF2P8AFFINEQB's bit transpose each row's 6 bits in its byte. About 150
// XORs per tree, against 8 transposes and affine pairs per block.
template <int B>
inline void leaf_numbers_by_planes(const typename RowSets<B>::V* leaves, int groups, size_t blocks,
                                   __m512i* numbers) {
  using S = RowSets<B>;
  using V = typename S::V;
  V group[8], within[8];  // group[a]: XOR of leaves 8a .. 8a + 7; within[l]: of leaves 8a + l
  for (int l = 0; l < 8; ++l) group[l] = within[l] = S::none();
  for (int a = 0; a < groups; ++a)
    for (int l = 0; l < 8; ++l) {
      const V x = leaves[8 * a + l];
      group[a] = S::xor_(group[a], x);
      within[l] = S::xor_(within[l], x);
    }
  const auto odd = [](const V* v, int s1, int s2, int s3, int s4) {
    return S::wide(S::xor_(S::xor_(v[s1], v[s2]), S::xor_(v[s3], v[s4])));
  };
  const __m512i zero = _mm512_setzero_si512();
  const __m512i planes[8] = {odd(within, 1, 3, 5, 7), odd(within, 2, 3, 6, 7), odd(within, 4, 5, 6, 7),
                             odd(group, 1, 3, 5, 7),  odd(group, 2, 3, 6, 7),  odd(group, 4, 5, 6, 7),
                             zero, zero};
  __m512i by_block[8];  // lane b: plane b of block k
  transpose_qwords(planes, by_block);
  const __m512i identity = _mm512_set1_epi64(0x8040201008040201);
  for (size_t k = 0; k < blocks; ++k)
    numbers[k] = _mm512_gf2p8affine_epi64_epi8(identity, transpose_bytes(by_block[k], true), 0);
}

// The order add_leaf_values looks a block's leaves up in, so that its
// unpacks (which move bytes only within 128-bit lanes) leave each output
// register holding consecutive rows: for 8 byte planes, slot 16L + 2o + q
// takes row 8o + 2L + q (output o, lane L, word q); for 4, slot 16L + 4c + d
// row 16c + 4L + d (output c, lane L, word d).
struct LeafSlotOrder {
  uint8_t planes8[64], planes4[64];
};
alignas(64) inline constexpr LeafSlotOrder kLeafSlotOrder = [] {
  LeafSlotOrder t{};
  for (int lane = 0; lane < 4; ++lane) {
    for (int o = 0; o < 8; ++o)
      for (int q = 0; q < 2; ++q) t.planes8[16 * lane + 2 * o + q] = uint8_t(8 * o + 2 * lane + q);
    for (int c = 0; c < 4; ++c)
      for (int d = 0; d < 4; ++d) t.planes4[16 * lane + 4 * c + d] = uint8_t(16 * c + 4 * lane + d);
  }
  return t;
}();

// A block's rows += their leaves' values: byte r of `leaf` (low 6 bits) is
// row r's leaf, column the block's sums for the tree's output. One byte
// permute per plane, then three rounds of unpacks (two for a float's four
// planes) interleave the planes into whole values: 33 permute-port
// operations per block for a double, against 40 for the transpose across
// lanes it replaced (Forest.predict on the pipeline heads, 1,000 trees of
// 63 leaves, fastest of 400 calls in alternating runs: 128 rows 98-104 ->
// 91-94 us, 472 rows 270-306 -> 242-265).
template <bool F32>
inline void add_leaf_values(const LeafPlanes& planes, __m512i leaf, double* column) {
  const __m512i slots = _mm512_permutexvar_epi8(
      _mm512_load_si512(F32 ? kLeafSlotOrder.planes4 : kLeafSlotOrder.planes8), leaf);
  constexpr int n_planes = F32 ? 4 : 8;
  __m512i p[8], a[8];
  for (int i = 0; i < n_planes; ++i) p[i] = _mm512_permutexvar_epi8(slots, _mm512_load_si512(planes.plane[i]));
  for (int i = 0; i < n_planes; i += 2) {  // a[i]: slots 16L + w, a[i + 1]: 16L + 8 + w; planes i, i + 1
    a[i] = _mm512_unpacklo_epi8(p[i], p[i + 1]);
    a[i + 1] = _mm512_unpackhi_epi8(p[i], p[i + 1]);
  }
  __m512i b[8];  // b[4h + c], planes 4h .. 4h + 3 of slots 16L + 4c + d
  for (int h = 0; h < n_planes / 4; ++h)
    for (int half = 0; half < 2; ++half) {
      b[4 * h + 2 * half] = _mm512_unpacklo_epi16(a[4 * h + half], a[4 * h + 2 + half]);
      b[4 * h + 2 * half + 1] = _mm512_unpackhi_epi16(a[4 * h + half], a[4 * h + 2 + half]);
    }
  if constexpr (F32) {
    float* sums = reinterpret_cast<float*>(column);
    for (int c = 0; c < 4; ++c)  // rows 16c .. 16c + 15
      _mm512_storeu_ps(sums + 16 * c, _mm512_add_ps(_mm512_loadu_ps(sums + 16 * c), _mm512_castsi512_ps(b[c])));
  } else {
    for (int c = 0; c < 4; ++c) {  // slots 16L + 4c + {0, 1} and {2, 3}: rows 16c .. 16c + 7 and 8 .. 15
      add_leaves(_mm512_castsi512_pd(_mm512_unpacklo_epi32(b[c], b[4 + c])), column, 2 * c);
      add_leaves(_mm512_castsi512_pd(_mm512_unpackhi_epi32(b[c], b[4 + c])), column, 2 * c + 1);
    }
  }
}

// A tree's split masks over the `blocks` column-major blocks of a visit
// (block_bytes apart), split s of block k at out[s * width + k]: the
// layout walk_alive reads (compare_splits without the bottom).
inline void compare_tree_splits(const BinnedTree& tree, const BinnedTreeInfo& info, const uint8_t* blocks_bins,
                                size_t block_bytes, size_t blocks, size_t width, uint64_t* out) {
  for (uint32_t s = 0; s < info.n_splits; ++s) {
    const __m512i rank = _mm512_set1_epi8(char(tree.rank[s]));
    const uint8_t* column = blocks_bins + 64 * size_t(tree.block_column[s]);
    for (size_t k = 0; k < blocks; ++k)
      out[s * width + k] = _cvtmask64_u64(_mm512_cmplt_epu8_mask(rank, _mm512_load_si512(column + k * block_bytes)));
  }
}

// Tree ti over the `blocks` (<= B) full blocks of a visit: masks + m * B
// holds split m's row masks for the blocks (m: its pair index when ByPairs,
// else its node id), columns[k] block k's sums for the tree's output.
template <int B, bool ByPairs, bool F32>
inline void walk_alive(const BinnedForest& b, size_t ti, const uint64_t* masks, size_t blocks,
                       double* const* columns) {
  using S = RowSets<B>;
  using V = typename S::V;
  const BinnedTreeInfo& info = b.info[ti];
  const uint32_t n = info.n_splits, leaves = n + 1, groups = (leaves + 7) / 8;
  alignas(64) V rows[2 * kBinnedLeaf];  // splits at their ids, leaves at kBinnedLeaf + j
  for (uint32_t j = leaves; j < 8 * groups; ++j) rows[kBinnedLeaf + j] = S::none();
  if (n == 0) {
    rows[kBinnedLeaf] = S::all();
  } else {
    rows[0] = S::all();
    const AliveStep* steps = b.alive_steps.data() + info.steps_at;
#pragma GCC unroll 4
    for (uint32_t i = 0; i < n; ++i) {
      const AliveStep step = steps[i];
      const V right = S::load(masks + (ByPairs ? size_t(step.pair) : size_t(i)) * B);
      const V here = rows[i];
      rows[step.right] = S::with(here, right);
      rows[step.left] = S::without(here, right);
    }
  }
  __m512i numbers[B];
  if constexpr (B >= 4) leaf_numbers_by_planes<B>(rows + kBinnedLeaf, int(groups), blocks, numbers);
  else leaf_numbers<B>(reinterpret_cast<const uint64_t*>(rows + kBinnedLeaf), int(groups), blocks, numbers);
  for (size_t k = 0; k < blocks; ++k) add_leaf_values<F32>(b.leaf_planes[ti], numbers[k], columns[k]);
}

}  // namespace
}  // namespace engine::trees
