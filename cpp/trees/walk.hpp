// The general forest walk shared by every level's translation unit. CPUs
// with AVX-512 VBMI, BITALG and GFNI (Ice Lake, Zen 4 and later) walk most
// forests in binned form instead (binned.hpp, 2-3x faster); this walk takes
// the rest there: categorical splits, vector leaves, deeper trees.
//
// Rows are first encoded as int32 keys (forest.hpp says why), column-major in
// blocks of kRowBlock rows, so that lane l of a group of consecutive rows
// reads K[column + l]: the row is an immediate offset, not a register. The
// walk then steps a group of independent lanes one node at a time, so the
// out-of-order core overlaps their dependent load chains instead of waiting
// on one; the lane indices live in registers. A lane is a (tree, row) pair:
// consecutive rows of one tree for batches, several trees of each row when
// there are few rows, which keeps a batch of one nearly as fast per tree.
//
// Gathers (AVX-512 / AVX2 across lanes) measured slower than this on AMD
// Zen 4, whose gathers issue one element at a time: a hand-written AVX-512
// gather walk by 15-45 %, and GCC's own vectorisation of these loops by
// 10 %. So every level walks the same way, built without tree vectorisation
// (cpp/CMakeLists.txt); the levels differ only in the instructions the
// compiler may pick.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trees/forest.hpp"
#include "trees/keys.hpp"

namespace engine::trees {
namespace {  // internal linkage: each translation unit keeps its own copy

constexpr int kLanes = 16;                 // lanes kept in registers at once
constexpr int kPairLanes = 16;            // (tree, row) lanes of a small batch
// Below the complete tops, general steps every lane of a group takes before
// the rows still walking are gathered and finished together: paths there
// differ in length (LightGBM's 63-leaf trees: 9 splits on average, up to
// 24), and a group that waited for its longest path would idle most lanes.
constexpr uint32_t kSharedSteps = 4;

// Keys of rows [0, n) of a block: K[((copy * n_features + j) * kRowBlock >> shift) + r],
// n <= kRowBlock >> shift. A Split's column is the offset at shift 0; a batch of
// one at shift 5 finds its keys in 2.4 KB instead of a cache line each (XGBoost
// depth 8, 300 features, batch 1: 25.1 -> 23.2 ns per row-tree).
inline void encode_rows(const Forest& f, const float* X, size_t n, size_t stride, uint32_t* K,
                        uint32_t shift = 0) {
  const size_t nf = f.n_features(), rows = kRowBlock >> shift;
  uint32_t* high = K;              // missing -> kMissingHigh
  uint32_t* low = K + nf * rows;  // missing -> kMissingLow
  for (size_t r = 0; r < n; ++r) {
    const float* x = X + r * stride;
    for (size_t j = 0; j < nf; ++j) {
      const bool missing = x[j] != x[j];
      const uint32_t key = float_key(x[j]);
      high[j * rows + r] = missing ? kMissingHigh : key;
      low[j * rows + r] = missing ? kMissingLow : key;
    }
    if (f.n_copies() == 2) continue;
    for (size_t j = 0; j < nf; ++j) {
      const bool missing = !(std::fabs(x[j]) > 1e-35f);  // NaN, or zero as missing
      const uint32_t key = float_key(x[j]);
      high[(2 * nf + j) * rows + r] = missing ? kMissingHigh : key;
      low[(2 * nf + j) * rows + r] = missing ? kMissingLow : key;
    }
  }
}

// Categorical splits: trunc(x) in the node's bitset goes left; a missing
// value already carries its direction in its key.
inline uint32_t categorical_right(const Forest& f, uint32_t cat, uint32_t key) {
  if (key == kMissingHigh) return 1;
  if (key == kMissingLow) return 0;
  const float x = key_float(key);
  const CatRange r = f.cats()[cat - 1];
  const bool negative = r.int_cast ? !(x > -1.0f) : !(x >= 0.0f);
  if (negative || x >= float(32.0 * r.words)) return 1;  // not a category of the set
  const uint32_t c = uint32_t(x);  // truncation, as both libraries cast
  return ~(f.cat_words()[r.begin + (c >> 5)] >> (c & 31)) & 1u;
}

// One general step; leaves point to themselves and never go right.
template <bool Special>
inline uint32_t general_step(const Forest& f, const uint32_t* K, uint32_t at, uint32_t shift = 0) {
  const uint32_t key = K[f.node_splits()[at].column >> shift];
  if constexpr (Special)
    if (const uint32_t cat = f.node_cat()[at]) return f.node_left()[at] + categorical_right(f, cat, key);
  return f.node_left()[at] + uint32_t(key >= f.node_splits()[at].key);
}

// kLanes consecutive rows (lane l reads K + l) of one tree: `steps` steps
// from nodes io[l], no check for arrival (a lane at its leaf stays there).
template <bool Special>
inline void general_rows(const Forest& f, const uint32_t* K, uint32_t steps, uint32_t* io) {
  uint32_t at[kLanes];
  for (int l = 0; l < kLanes; ++l) at[l] = io[l];
  for (uint32_t s = 0; s < steps; ++s) {
#pragma GCC unroll 16
    for (int l = 0; l < kLanes; ++l) at[l] = general_step<Special>(f, K + l, at[l]);
  }
  for (int l = 0; l < kLanes; ++l) io[l] = at[l];
}

// kLanes consecutive rows through the complete top of one tree: exactly
// `depth` steps; out is each lane's position among the 2^depth below.
inline void complete_rows(const Split* nodes, const uint32_t* K, uint32_t depth, uint32_t* out) {
  uint32_t at[kLanes];
  for (int l = 0; l < kLanes; ++l) at[l] = 0;
  for (uint32_t s = 0; s < depth; ++s) {
#pragma GCC unroll 16
    for (int l = 0; l < kLanes; ++l) {
      const Split nd = nodes[at[l]];
      at[l] = 2 * at[l] + 1 + uint32_t(K[nd.column + l] >= nd.key);
    }
  }
  const uint32_t internal = (1u << depth) - 1;
  for (int l = 0; l < kLanes; ++l) out[l] = at[l] - internal;
}

// Lanes with rows and trees of their own (few rows, or the rows left over
// after full groups): lane l reads K + row[l], starts at at[l].
template <bool Special>
inline void general_lanes(const Forest& f, const uint32_t* K, const uint32_t* row, uint32_t* at,
                          int lanes, uint32_t depth, uint32_t shift = 0) {
  for (uint32_t s = 0; s < depth; ++s) {
    uint32_t moved = 0;
    for (int l = 0; l < lanes; ++l) {
      const uint32_t next = general_step<Special>(f, K + row[l], at[l], shift);
      moved |= next ^ at[l];
      at[l] = next;
    }
    if (!moved) break;
  }
}

// The same through complete tops of one depth; lane l's nodes start at base[l].
inline void complete_lanes(const Split* nodes, const uint32_t* base, const uint32_t* K,
                           const uint32_t* row, uint32_t* at, int lanes, uint32_t depth, uint32_t shift) {
  for (int l = 0; l < lanes; ++l) at[l] = 0;
  for (uint32_t s = 0; s < depth; ++s)
    for (int l = 0; l < lanes; ++l) {
      const Split nd = nodes[base[l] + at[l]];
      at[l] = 2 * at[l] + 1 + uint32_t(K[(nd.column >> shift) + row[l]] >= nd.key);
    }
  const uint32_t internal = (1u << depth) - 1;
  for (int l = 0; l < lanes; ++l) at[l] -= internal;
}

// acc += v in the head's precision: XGBoost heads sum in float, in tree order.
inline void add_value(double& acc, double v, bool f32) {
  acc = f32 ? double(float(acc) + float(v)) : acc + v;
}

inline void add_leaf(const Forest& f, const TreeInfo& t, uint32_t leaf, double* acc_row) {
  const double* v = f.values() + t.value_base + uint64_t(leaf - t.root) * t.width;
  if (t.output >= 0) return add_value(acc_row[t.output], *v, t.f32);
  for (uint32_t k = 0; k < t.width; ++k) add_value(acc_row[t.first_output + k], v[k], t.f32);
}

// The node where lane position `slot` below tree t's complete top goes on.
inline uint32_t below_top(const Forest& f, const TreeInfo& t, uint32_t slot) {
  return f.complete_bottom()[t.leaf_base + slot];
}

// Lanes over (tree, row) pairs for trees [t0, t1) and rows [r0, n): at most
// kPairLanes of them. The trees' complete tops are used when they all have
// the same depth; otherwise every lane walks the general layout from its root.
inline void walk_pairs(const Forest& f, const uint32_t* K, size_t t0, size_t t1, size_t r0, size_t n,
                       double* acc, uint32_t shift = 0) {
  const TreeInfo* trees = f.trees();
  uint32_t top = trees[t0].top;
  for (size_t ti = t0 + 1; ti < t1; ++ti)
    if (trees[ti].top != top) top = 0;
  uint32_t row[kPairLanes], at[kPairLanes], base[kPairLanes];
  int lanes = 0;
  uint32_t rest = 0;  // general steps left after the top
  bool special = false;
  for (size_t ti = t0; ti < t1; ++ti) {
    rest = std::max(rest, trees[ti].depth - top);
    special |= trees[ti].special;
    for (size_t r = r0; r < n; ++r, ++lanes) {
      row[lanes] = uint32_t(r);
      at[lanes] = trees[ti].root;
      base[lanes] = uint32_t(trees[ti].complete_base);
    }
  }
  if (top) {
    complete_lanes(f.complete_nodes(), base, K, row, at, lanes, top, shift);
    int l = 0;
    for (size_t ti = t0; ti < t1; ++ti)
      for (size_t r = r0; r < n; ++r, ++l) at[l] = below_top(f, trees[ti], at[l]);
  }
  if (rest) {
    // As for full groups: every lane takes the shared steps, then only the
    // lanes not at a leaf go on (a batch of one walks 16 trees side by side
    // whose paths run from 2 to 20 splits; stepping all 16 until the longest
    // ended wasted most steps).
    const uint32_t shared = std::min(rest, kSharedSteps);
    if (special) general_lanes<true>(f, K, row, at, lanes, shared, shift);
    else general_lanes<false>(f, K, row, at, lanes, shared, shift);
    if (rest > shared) {
      const uint32_t* left = f.node_left();
      uint32_t lane[kPairLanes], still_row[kPairLanes], still_at[kPairLanes];
      int m = 0;
      for (int l = 0; l < lanes; ++l) {
        lane[m] = uint32_t(l);
        still_row[m] = row[l];
        still_at[m] = at[l];
        m += left[at[l]] != at[l];
      }
      if (special) general_lanes<true>(f, K, still_row, still_at, m, rest - shared, shift);
      else general_lanes<false>(f, K, still_row, still_at, m, rest - shared, shift);
      for (int i = 0; i < m; ++i) at[lane[i]] = still_at[i];
    }
  }
  const size_t n_out = f.n_outputs();
  int l = 0;
  for (size_t ti = t0; ti < t1; ++ti)
    for (size_t r = r0; r < n; ++r, ++l) add_leaf(f, trees[ti], at[l], acc + r * n_out);
}

// One encoded block of n <= kRowBlock rows, trees [tb, te), in tree order per row.
inline void accumulate_block(const Forest& f, const uint32_t* K, size_t n, double* acc, size_t tb, size_t te,
                             uint32_t shift) {
  const TreeInfo* trees = f.trees();
  const size_t n_out = f.n_outputs();
  if (n < size_t(kLanes)) {
    // Few rows: lanes over groups of consecutive trees.
    const size_t per_group = std::max<size_t>(1, kPairLanes / n);
    for (size_t t0 = tb; t0 < te; t0 += per_group)
      walk_pairs(f, K, t0, std::min(te, t0 + per_group), 0, n, acc, shift);
    return;
  }
  uint32_t at[kRowBlock], row[kRowBlock], still[kRowBlock];
  const uint32_t* left = f.node_left();
  const size_t full = n - n % kLanes;
  for (size_t ti = tb; ti < te; ++ti) {
    const TreeInfo& t = trees[ti];
    for (size_t r = 0; r < full; r += kLanes) {
      if (t.top) {
        complete_rows(f.complete_nodes() + t.complete_base, K + r, t.top, at + r);
        if (t.values_at_bottom) {
          const double* v = f.complete_values() + t.leaf_base;
          for (int l = 0; l < kLanes; ++l)
            add_value(acc[(r + l) * n_out + size_t(t.output)], v[at[r + l]], t.f32);
          continue;
        }
        for (int l = 0; l < kLanes; ++l) at[r + l] = below_top(f, t, at[r + l]);
      } else {
        std::fill(at + r, at + r + kLanes, t.root);
      }
      if (t.depth > t.top) {
        const uint32_t steps = std::min(t.depth - t.top, kSharedSteps);
        if (t.special) general_rows<true>(f, K + r, steps, at + r);
        else general_rows<false>(f, K + r, steps, at + r);
      }
    }
    if (!t.values_at_bottom) {
      if (t.depth > t.top + kSharedSteps) {
        // The rows not at a leaf yet, gathered without branches, finish together.
        // Rows already at their leaf fetch its value meanwhile (the values
        // are in L2 cache at best, and add_leaf would wait for each).
        const double* values = f.values() + t.value_base;
        int m = 0;
        for (size_t r = 0; r < full; ++r) {
          row[m] = uint32_t(r);
          still[m] = at[r];
          __builtin_prefetch(values + size_t(at[r] - t.root) * t.width);
          m += left[at[r]] != at[r];
        }
        if (t.special) general_lanes<true>(f, K, row, still, m, t.depth - t.top - kSharedSteps);
        else general_lanes<false>(f, K, row, still, m, t.depth - t.top - kSharedSteps);
        for (int i = 0; i < m; ++i) at[row[i]] = still[i];
      }
      for (size_t r = 0; r < full; ++r) add_leaf(f, t, at[r], acc + r * n_out);
    }
    if (full < n) walk_pairs(f, K, ti, ti + 1, full, n, acc);
  }
}

inline void accumulate(const Forest& f, const float* X, size_t n, size_t stride, double* acc, size_t tb,
                       size_t te) {
  thread_local std::vector<uint32_t> keys;
  keys.resize(size_t(f.n_features()) * f.n_copies() * kRowBlock);
  // A batch too small for full groups packs its rows tighter (encode_rows;
  // walk_pairs reads them).
  uint32_t shift = 0;
  while (n < size_t(kLanes) && (kRowBlock >> (shift + 1)) >= n) ++shift;
  for (size_t b = 0; b < n; b += kRowBlock) {
    const size_t m = std::min(kRowBlock, n - b);
    encode_rows(f, X + b * stride, m, stride, keys.data(), shift);
    accumulate_block(f, keys.data(), m, acc + b * f.n_outputs(), tb, te, shift);
  }
}

}  // namespace
}  // namespace engine::trees
