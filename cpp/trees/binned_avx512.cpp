// The binned forest walk (binned.hpp), built for AVX-512 with VBMI (byte
// permutes across two registers), BITALG (a bit picked per lane) and GFNI
// (bit-matrix transposes):
//
//   rows to byte bins                        binned_bins_avx512.hpp
//   split outcomes, W = bins[column[i]] > rank[i]:
//     full blocks: a 64-row mask per split   (one compare per distinct split
//                                             of the forest, or per split)
//     fewer rows: a 64-split word per row    binned_outcomes_avx512.hpp
//   full blocks: each node's rows, its parent's AND (NOT) W[split], then
//     each row's leaf from its leaf's mask   binned_alive_avx512.hpp
//   fewer rows: 8 rows (one per 64-bit lane) step together (walk_groups):
//     node = W[row][node] ? right[node] : left[node]   vpshufbitqmb, 2 vpermi2b
//   and the leaf's value comes from 64 values held in registers.
//
// A tree's tables are fetched once per visit of up to 8 blocks, and neither
// walk waits on the load chains that limit the general walk (walk.hpp).
// Forests without a binned form take that general walk.
#include <immintrin.h>

#include <cstring>

#include <algorithm>
#include <new>
#include <vector>

#include "trees/binned.hpp"
#include "trees/binned_alive_avx512.hpp"
#include "trees/binned_bins_avx512.hpp"
#include "trees/binned_outcomes_avx512.hpp"
#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {
namespace {

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

// One step of 8 rows (one per 64-bit lane) down a tree's tables: each goes
// to its node's right child if the node's bit of its outcome word is set.
inline __m512i step(const TreeRegisters& t, __m512i w, __m512i node) {
  const __mmask64 right = _mm512_bitshuffle_epi64_mask(w, node);
  return _mm512_mask_mov_epi8(_mm512_permutex2var_epi8(t.left0, node, t.left1), right,
                              _mm512_permutex2var_epi8(t.right0, node, t.right1));
}

// G groups of 8 rows through a tree's tables side by side (one group alone
// would wait on each step's permute latency): node ids in, end nodes out.
template <int G>
inline void walk_groups(const TreeRegisters& t, const BinnedTreeInfo& info, const __m512i* w, __m512i* node) {
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) node[g] = _mm512_set1_epi8(char(info.root));
  for (uint32_t s = 0; s < info.depth; ++s) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) node[g] = step(t, w[g], node[g]);
  }
}

// The leaf values of 8 lanes at table nodes `node`.
template <bool F32>
inline void add_table_leaves(const TreeRegisters& t, __m512i node, double* column, int g) {
  if constexpr (F32) add_leaves(leaf_values_f32(t, node), column, g);
  else add_leaves(leaf_values(t, node), column, g);
}

// K consecutive trees over a partial block's G groups (row-major bins) side
// by side; columns holds the block's output columns. With a group or two,
// one tree's walk is a short chain of dependent permutes that leaves the CPU
// idle (8 rows cost ~7 ns per row-tree, against ~1.5 in full blocks). Leaves
// point to themselves, so a tree stepped past its depth stays put; leaves
// are added tree by tree, in order, so the sums are those of one at a time.
template <int G, int K, bool F32>
inline void walk_tree_rows(const BinnedForest& b, size_t t0, const uint8_t* bins, double* columns) {
  TreeRegisters t[K];
  __m512i w[K][G], node[K][G];
  uint32_t depth = 0;
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const BinnedTreeInfo& info = b.info[t0 + k];
    t[k] = load_tree(b.trees[t0 + k], F32);
    outcomes_by_row<G>(b, t[k], b.chunk_masks.data() + info.chunk_mask_at, info.missing_left, bins, w[k]);
    for (int g = 0; g < G; ++g) node[k][g] = _mm512_set1_epi8(char(info.root));
    depth = std::max<uint32_t>(depth, info.depth);
  }
  for (uint32_t s = 0; s < depth; ++s) {
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) node[k][g] = step(t[k], w[k][g], node[k][g]);
  }
  for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g)
      add_table_leaves<F32>(t[k], node[k][g], columns + b.info[t0 + k].output * kBlockRows, g);
}

// A tree with a bottom (binned.hpp) over a full block from its split masks
// (compare_splits): the top levels 8 rows per register, as the bottom's
// outcomes need.
template <bool F32>
inline void walk_deep_tree_block(const BinnedForest& b, size_t ti, const SplitMasks& masks, double* acc) {
  const BinnedTreeInfo& info = b.info[ti];
  const TreeRegisters t = load_tree(b.trees[ti], F32);
  __m512i w[8], node[8];
  transpose_bits(masks.top, w);
  walk_groups<8>(t, info, w, node);
  const BinnedBottom& bb = b.bottoms[size_t(info.bottom)];
  __m512i bottom[3][8];
  for (int k = 0; k < 3; ++k) transpose_bits(masks.bottom[k], bottom[k]);
#pragma GCC unroll 8
  for (int g = 0; g < 8; ++g) {
    const __m512i leaf = bottom_leaves(node[g], bottom[0][g], bottom[1][g], bottom[2][g]);
    if constexpr (F32) add_leaves(_mm512_i64gather_ps(leaf, bb.values.f32, 4), acc, g);
    else add_leaves(_mm512_i64gather_pd(leaf, bb.values.f64, 8), acc, g);
  }
}

// Full blocks of rows walked together, each tree over all of them before
// the next, so that a tree's tables are fetched once per kBlocksPerVisit
// blocks (a 1,000-tree depth-8 forest holds 4.7 MB of them), and a row-set
// walk's AND covers every block of the visit (a 512-bit register for 8).
// In-process A/B, 4 -> 8 blocks, random forests of 100 features: 1,000
// trees of 6 levels, 512 rows 217 -> 187 us, 4,096 rows 1,770 -> 1,595;
// 500 XGBoost-like trees of 8 levels 376 -> 357, 2,998 -> 2,925; the
// pipeline heads, 500 rows 450 -> 432.
constexpr size_t kBlocksPerVisit = 8;

// v[k], the leaf value tree t0 + k gives a row, added to the row's sums in
// tree order; the sum stays in a register while consecutive trees add to
// one output.
template <size_t K>
inline void add_row_values(const BinnedForest& b, size_t t0, const double* v, double* acc) {
  uint32_t output = b.info[t0].output;
  double sum = acc[output];
  for (size_t k = 0; k < K; ++k) {
    const BinnedTreeInfo& info = b.info[t0 + k];
    if (info.output != output) {
      acc[output] = sum;
      output = info.output;
      sum = acc[output];
    }
    sum = info.f32 ? double(float(sum) + float(v[k])) : sum + v[k];
  }
  acc[output] = sum;
}

// K trees of one row: split outcomes, then the trees walked side by side in
// scalar registers until all are at leaves (at most as many steps as the
// deepest), and the leaves added in tree order.
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
    w[k] = outcomes(t, row, b.chunk_masks.data() + info.chunk_mask_at, b.n_chunks, info.missing_left);
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
  double v[K];
  for (size_t k = 0; k < K; ++k) {
    const LeafValues<64>& values = b.trees[t0 + k].values;
    v[k] = b.info[t0 + k].f32 ? values.f32[node[k] - kBinnedLeaf] : values.f64[node[k] - kBinnedLeaf];
  }
  add_row_values<K>(b, t0, v, acc);
}

// K trees of one row through their complete form (binned.hpp's
// BinnedComplete, depth D), side by side in scalar registers: every step
// is a node load, a bin load and a compare, with no child index to load.
template <uint32_t D, size_t K, class V>
inline void complete_row_trees(const BinnedForest& b, const V* values, size_t t0, const uint8_t* row,
                               double* acc) {
  const uint32_t* nodes = b.complete.nodes.data() + (t0 << D);
  uint32_t at[K];
  for (size_t k = 0; k < K; ++k) at[k] = 0;
  for (uint32_t s = 0; s < D; ++s) {
#pragma GCC unroll 8
    for (size_t k = 0; k < K; ++k) {
      const uint32_t node = nodes[(k << D) + at[k]];
      const uint32_t bin = row[node & 0xFFFF], lo = node >> 16 & 0xFF, span = node >> 24;
      at[k] = 2 * at[k] + 1 + uint32_t(bin - lo < span);
    }
  }
  constexpr uint32_t internal = (1u << D) - 1;
  double v[K];
  for (size_t k = 0; k < K; ++k) v[k] = double(values[((t0 + k) << D) + at[k] - internal]);
  add_row_values<K>(b, t0, v, acc);
}

template <uint32_t D, class V>
void walk_rows_complete(const BinnedForest& b, const V* values, size_t tb, size_t te, const uint8_t* bins,
                        size_t n, double* acc, size_t n_out) {
  for (size_t r = 0; r < n; ++r) {
    const uint8_t* row = bins + r * b.row_bytes;
    double* a = acc + r * n_out;
    size_t t0 = tb;
    for (; t0 + 8 <= te; t0 += 8) complete_row_trees<D, 8>(b, values, t0, row, a);
    for (; t0 < te; ++t0) complete_row_trees<D, 1>(b, values, t0, row, a);
  }
}

template <class V>
void walk_rows_complete(const BinnedForest& b, const V* values, size_t tb, size_t te, const uint8_t* bins,
                        size_t n, double* acc, size_t n_out) {
  switch (b.complete.depth) {
    case 1: return walk_rows_complete<1>(b, values, tb, te, bins, n, acc, n_out);
    case 2: return walk_rows_complete<2>(b, values, tb, te, bins, n, acc, n_out);
    case 3: return walk_rows_complete<3>(b, values, tb, te, bins, n, acc, n_out);
    case 4: return walk_rows_complete<4>(b, values, tb, te, bins, n, acc, n_out);
    case 5: return walk_rows_complete<5>(b, values, tb, te, bins, n, acc, n_out);
    case 6: return walk_rows_complete<6>(b, values, tb, te, bins, n, acc, n_out);
    case 7: return walk_rows_complete<7>(b, values, tb, te, bins, n, acc, n_out);
    default: return walk_rows_complete<8>(b, values, tb, te, bins, n, acc, n_out);
  }
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

// The words of a split's row masks for a visit of `blocks` blocks (walk_alive's B).
inline size_t row_set_width(size_t blocks) { return blocks <= 2 ? blocks : blocks <= 4 ? 4 : 8; }

// walk_alive over a visit's blocks, in the tree's precision.
template <bool ByPairs>
void walk_alive_blocks(const BinnedForest& b, size_t ti, const uint64_t* masks, size_t blocks,
                       double* const* columns) {
  const bool f32 = b.info[ti].f32;
  switch (row_set_width(blocks)) {
    case 1: return f32 ? walk_alive<1, ByPairs, true>(b, ti, masks, blocks, columns)
                       : walk_alive<1, ByPairs, false>(b, ti, masks, blocks, columns);
    case 2: return f32 ? walk_alive<2, ByPairs, true>(b, ti, masks, blocks, columns)
                       : walk_alive<2, ByPairs, false>(b, ti, masks, blocks, columns);
    case 4: return f32 ? walk_alive<4, ByPairs, true>(b, ti, masks, blocks, columns)
                       : walk_alive<4, ByPairs, false>(b, ti, masks, blocks, columns);
    default: return f32 ? walk_alive<8, ByPairs, true>(b, ti, masks, blocks, columns)
                        : walk_alive<8, ByPairs, false>(b, ti, masks, blocks, columns);
  }
}

// The rows after a visit's blocks, fetched into L2 a few cache lines per
// tree while those blocks walk: a large batch streams from memory
// otherwise, and binning would wait on every row.
struct Prefetch {
  const char* rows = nullptr;
  size_t row_bytes = 0, stride_bytes = 0, n_rows = 0, next = 0, per_tree = 0;
  void step() {
    const size_t lines = (row_bytes + 63) / 64;
    for (size_t i = 0; i < per_tree && next < n_rows * lines; ++i, ++next)
      _mm_prefetch(rows + next / lines * stride_bytes + next % lines * 64, _MM_HINT_T1);
  }
};

// K consecutive trees of one precision from ti (walk_tree_rows).
template <int G, int K>
inline void walk_tree_group(const BinnedForest& b, size_t ti, const uint8_t* bins, double* columns) {
  if (b.info[ti].f32) walk_tree_rows<G, K, true>(b, ti, bins, columns);
  else walk_tree_rows<G, K, false>(b, ti, bins, columns);
}

// A partial block (row-major bins) of 8G rows or fewer, every tree.
template <int G>
void walk_trees(const BinnedForest& b, size_t tb, size_t te, const uint8_t* bins, double* columns) {
  // Trees side by side, 4 chains (in-process A/B, pipeline heads: 8 rows
  // 57 -> 36 us, 16 rows 69 -> 62; 2 trees of 4 groups were slower, 97 -> 115).
  constexpr int K = G == 1 ? 4 : G == 2 ? 2 : 1;
  const auto one_precision = [&](size_t ti) {
    for (int k = 1; k < K; ++k)
      if (b.info[ti + k].f32 != b.info[ti].f32) return false;
    return true;
  };
  size_t ti = tb;
  if constexpr (K > 1)
    for (; ti + K <= te && one_precision(ti); ti += K) walk_tree_group<G, K>(b, ti, bins, columns);
  for (; ti < te; ++ti) walk_tree_group<G, 1>(b, ti, bins, columns);
}

// A block's running sums, row-major in acc (n_out per row) and column-major
// in columns (kBlockRows per output), the layout the walks add 8 rows to; a
// float output's sums are floats there (exact: they are float values).
void sums_to_columns(const BinnedForest& b, const double* acc, size_t rows, size_t n_out, double* columns) {
  for (size_t o = 0; o < n_out; ++o) {
    double* column = columns + o * kBlockRows;
    float* floats = reinterpret_cast<float*>(column);
    if (b.output_f32[o])
      for (size_t r = 0; r < rows; ++r) floats[r] = float(acc[r * n_out + o]);
    else
      for (size_t r = 0; r < rows; ++r) column[r] = acc[r * n_out + o];
  }
}
void columns_to_sums(const BinnedForest& b, const double* columns, size_t rows, size_t n_out, double* acc) {
  for (size_t o = 0; o < n_out; ++o) {
    const double* column = columns + o * kBlockRows;
    const float* floats = reinterpret_cast<const float*>(column);
    if (b.output_f32[o])
      for (size_t r = 0; r < rows; ++r) acc[r * n_out + o] = floats[r];
    else
      for (size_t r = 0; r < rows; ++r) acc[r * n_out + o] = column[r];
  }
}

struct BlockBuffers {  // per thread, reused across calls
  std::vector<float, Aligned64<float>> values;  // one block, column-major
  std::vector<uint8_t, Aligned64<uint8_t>> bins;  // kBlocksPerVisit blocks of bins
  std::vector<double> columns;                   // per block, n_out x kBlockRows sums
  std::vector<uint64_t> pair_masks;              // split_pairs' row masks, [pair][block of the visit]
  std::vector<float> padded;                     // walk_padded's rows
  std::vector<double> padded_acc;
};

constexpr size_t kPadJoined = 8, kPadAlone = 20;  // remainders walked as a padded full block

// Rows [0, blocks * kBlockRows) of X, in full blocks.
void walk_full_blocks(const Forest& f, const float* X, size_t stride, size_t blocks, size_t rows_after,
                      double* acc, size_t tb, size_t te, BlockBuffers& buf) {
  const BinnedForest& b = f.binned();
  const size_t n_out = f.n_outputs(), block_bytes = 2 * kBlockRows * b.row_bytes;  // bin_block's two copies
  for (size_t k = 0; k < blocks; ++k) {
    const float* rows = X + k * kBlockRows * stride;
    transpose_block(rows, stride, f.n_features(), buf.values.data());
    bin_block(b, buf.values.data(), buf.bins.data() + k * block_bytes);
    sums_to_columns(b, acc + k * kBlockRows * n_out, kBlockRows, n_out, buf.columns.data() + k * n_out * kBlockRows);
  }
  Prefetch next;  // the rows after these
  if (te > tb && rows_after) {
    next.rows = reinterpret_cast<const char*>(X + blocks * kBlockRows * stride);
    next.row_bytes = f.n_features() * sizeof(float);
    next.stride_bytes = stride * sizeof(float);
    next.n_rows = std::min(blocks * kBlockRows, rows_after);
    next.per_tree = (next.n_rows * ((next.row_bytes + 63) / 64) + te - tb - 1) / (te - tb);
  }
  // Every distinct split's rows once per block, when the trees walked hold
  // each twice or more on average (a first phase's few trees may not).
  size_t n_splits = 0;
  for (size_t ti = tb; ti < te; ++ti) n_splits += b.info[ti].n_splits;
  const bool by_pairs = !b.split_pairs.empty() && 2 * b.split_pairs.size() <= n_splits;
  const size_t width = row_set_width(blocks);  // words per split in pair_masks and split_rows
  if (by_pairs) {
    // Blocks inside: one rank broadcast per split for every block.
    const size_t np = b.split_pairs.size();
    for (size_t p = 0; p < np; ++p) {
      const uint32_t code = b.split_pairs[p];
      const __m512i rank = _mm512_set1_epi8(char(code & 255));
      const uint8_t* column = buf.bins.data() + 64 * size_t(code >> 8);
      for (size_t k = 0; k < blocks; ++k)
        buf.pair_masks[p * width + k] =
            _cvtmask64_u64(_mm512_cmplt_epu8_mask(rank, _mm512_load_si512(column + k * block_bytes)));
    }
  }
  // Trees without a bottom walk as row sets (binned_alive_avx512.hpp), from
  // the split masks of every block of the visit, [split][block]: the
  // distinct splits' or, per tree, its own.
  SplitMasks masks[kBlocksPerVisit] = {};  // deep trees: bits no split sets are read but never matter
  alignas(64) uint64_t split_rows[64 * kBlocksPerVisit];
  for (size_t ti = tb; ti < te; ++ti) {
    next.step();
    const BinnedTreeInfo& info = b.info[ti];
    if (info.bottom < 0) {
      double* columns[kBlocksPerVisit];
      for (size_t k = 0; k < blocks; ++k) columns[k] = buf.columns.data() + (k * n_out + info.output) * kBlockRows;
      if (by_pairs) {
        walk_alive_blocks<true>(b, ti, buf.pair_masks.data(), blocks, columns);
        continue;
      }
      compare_tree_splits(b.trees[ti], info, buf.bins.data(), block_bytes, blocks, width, split_rows);
      walk_alive_blocks<false>(b, ti, split_rows, blocks, columns);
      continue;
    }
    const BinnedBottom* bottom = &b.bottoms[size_t(info.bottom)];
    for (size_t k = 0; k < blocks; ++k)
      compare_splits(b.trees[ti], info, bottom, buf.bins.data() + k * block_bytes, masks[k]);
    for (size_t k = 0; k < blocks; ++k) {
      double* column = buf.columns.data() + (k * n_out + info.output) * kBlockRows;
      if (info.f32) walk_deep_tree_block<true>(b, ti, masks[k], column);
      else walk_deep_tree_block<false>(b, ti, masks[k], column);
    }
  }
  for (size_t k = 0; k < blocks; ++k)
    columns_to_sums(b, buf.columns.data() + k * n_out * kBlockRows, kBlockRows, n_out, acc + k * kBlockRows * n_out);
}

// Rows [0, n) of X (n % kBlockRows != 0, at most kBlocksPerVisit blocks)
// copied into whole blocks, the last padded with copies of the final row,
// and walked as full blocks; acc receives the n real rows' sums.
void walk_padded(const Forest& f, const float* X, size_t n, size_t stride, double* acc, size_t tb, size_t te,
                 BlockBuffers& buf) {
  const size_t nf = f.n_features(), n_out = f.n_outputs();
  const size_t blocks = (n + kBlockRows - 1) / kBlockRows, rows = blocks * kBlockRows;
  buf.padded.resize(rows * nf);
  buf.padded_acc.assign(rows * n_out, 0.0);
  for (size_t r = 0; r < rows; ++r)
    std::memcpy(buf.padded.data() + r * nf, X + std::min(r, n - 1) * stride, nf * sizeof(float));
  std::memcpy(buf.padded_acc.data(), acc, n * n_out * sizeof(double));
  walk_full_blocks(f, buf.padded.data(), nf, blocks, 0, buf.padded_acc.data(), tb, te, buf);
  std::memcpy(acc, buf.padded_acc.data(), n * n_out * sizeof(double));
}

void accumulate_binned(const Forest& f, const float* X, size_t n, size_t stride, double* acc, size_t tb,
                       size_t te) {
  const BinnedForest& b = f.binned();
  if (!b.usable) return accumulate(f, X, n, stride, acc, tb, te);
  const size_t n_out = f.n_outputs();
  thread_local BlockBuffers buf;
  buf.values.resize(size_t(f.n_features()) * kBlockRows);
  buf.bins.resize(kBlocksPerVisit * 2 * kBlockRows * b.row_bytes);
  buf.columns.resize(kBlocksPerVisit * n_out * kBlockRows);
  buf.pair_masks.resize(kBlocksPerVisit * b.split_pairs.size());
  // A remainder is walked as a full block, padded, with the full blocks of
  // the last visit (copied next to it): a full block's row-set walk costs
  // about as much as 12-16 rows walked 8 to a register, so from 8 rows the
  // padded block is cheaper when it joins others (their row sets share the
  // AND), from 20 alone. The pipeline heads (1,000 trees), random rows,
  // medians, unpadded -> padded: 72 rows 119 -> 105-108 us, 76 rows 147 ->
  // 102-108, 140 rows 182 -> 149-151, 150 rows 210 -> 148-156; alone, 16
  // rows 69 -> 73-79 (not padded), 24 rows 97 -> 73-79.
  const size_t full = n / kBlockRows, m_left = n % kBlockRows;
  const bool pad = b.bottoms.empty() && m_left >= (full % kBlocksPerVisit ? kPadJoined : kPadAlone);
  const size_t direct = pad ? full - full % kBlocksPerVisit : full;  // blocks walked in place
  size_t r0 = 0;
  for (size_t blocks; (blocks = std::min(kBlocksPerVisit, direct - r0 / kBlockRows)) > 0; r0 += blocks * kBlockRows) {
    const size_t rows = blocks * kBlockRows;
    walk_full_blocks(f, X + r0 * stride, stride, blocks, n - r0 - rows, acc + r0 * n_out, tb, te, buf);
  }
  if (pad) return walk_padded(f, X + r0 * stride, n - r0, stride, acc + r0 * n_out, tb, te, buf);
  const size_t m = n - r0;  // fewer rows than a block
  if (m == 0) return;
  double* a = acc + r0 * n_out;
  uint8_t* block = buf.bins.data();
  if (m < 8 && b.complete.depth) {
    // A row at a time, in the complete form (half the misses of the others).
    bin_rows(b, X + r0 * stride, m, stride, block, b.row_bytes, 1);
    if (!b.complete.values_f32.empty()) return walk_rows_complete(b, b.complete.values_f32.data(), tb, te, block, m, a, n_out);
    return walk_rows_complete(b, b.complete.values_f64.data(), tb, te, block, m, a, n_out);
  }
  if (!b.bottoms.empty()) return accumulate(f, X + r0 * stride, m, stride, a, tb, te);  // faster there
  bin_rows(b, X + r0 * stride, m, stride, block, b.row_bytes, 1);
  if (m < 8) return walk_rows(b, tb, te, block, m, a, n_out);
  double* columns = buf.columns.data();
  sums_to_columns(b, a, m, n_out, columns);
  switch ((m + 7) / 8) {
    case 1: walk_trees<1>(b, tb, te, block, columns); break;
    case 2: walk_trees<2>(b, tb, te, block, columns); break;
    case 3: walk_trees<3>(b, tb, te, block, columns); break;
    case 4: walk_trees<4>(b, tb, te, block, columns); break;
    case 5: walk_trees<5>(b, tb, te, block, columns); break;
    case 6: walk_trees<6>(b, tb, te, block, columns); break;
    case 7: walk_trees<7>(b, tb, te, block, columns); break;
    default: walk_trees<8>(b, tb, te, block, columns); break;
  }
  columns_to_sums(b, columns, m, n_out, a);
}

}  // namespace

const EvalKernels& avx512_vbmi_eval() {
  static const EvalKernels table{simd::Level::avx512, "avx512-vbmi", &accumulate_binned};
  return table;
}

}  // namespace engine::trees
