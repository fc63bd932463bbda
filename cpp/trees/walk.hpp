// The forest walk shared by every level's translation unit (each compiles it
// with its own flags; the AVX-512 unit adds a gather walker).
//
// Rows are first encoded as int32 keys (forest.hpp says why), then walked in
// groups of kLanes independent lanes, one node step for every lane at a time,
// so the out-of-order core overlaps kLanes dependent load chains instead of
// waiting on one. A lane is a (tree, row) pair: kLanes rows of one tree for
// batches, or several trees of each row when there are few rows, which keeps
// a batch of one nearly as fast per tree as a large batch.
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

constexpr int kLanes = 16;
constexpr size_t kRowBlock = 32;  // rows whose keys stay in cache across all trees

// rows x (n_copies * n_features) keys; the loops vectorise at every level.
inline void encode_rows(const Forest& f, const float* X, size_t n, size_t stride, int32_t* keys) {
  const size_t nf = f.n_features(), width = nf * f.n_copies();
  for (size_t r = 0; r < n; ++r) {
    const float* x = X + r * stride;
    int32_t* k = keys + r * width;
    for (size_t j = 0; j < nf; ++j) {
      const bool missing = x[j] != x[j];
      const int32_t key = float_key(x[j]);
      k[j] = missing ? kMissingHigh : key;
      k[nf + j] = missing ? kMissingLow : key;
    }
    if (f.n_copies() == 2) continue;
    for (size_t j = 0; j < nf; ++j) {
      const bool missing = !(std::fabs(x[j]) > 1e-35f);  // NaN, or zero as missing
      const int32_t key = float_key(x[j]);
      k[2 * nf + j] = missing ? kMissingHigh : key;
      k[3 * nf + j] = missing ? kMissingLow : key;
    }
  }
}

// Categorical splits: trunc(x) in the node's bitset goes left; a missing
// value already carries its direction in its key.
inline uint32_t categorical_right(const Forest& f, const Node& nd, int32_t key) {
  if (key == kMissingHigh) return 1;
  if (key == kMissingLow) return 0;
  const float x = key_float(key);
  const CatRange r = f.cats()[nd.cat - 1];
  if (!(x >= 0.0f) || x >= float(32.0 * r.words)) return 1;  // negative or past the set
  const uint32_t c = uint32_t(x);  // truncation, as both libraries cast
  return ~(f.cat_words()[r.begin + (c >> 5)] >> (c & 31)) & 1u;
}

// One step of one lane. Leaves point to themselves and never go right.
template <bool Special>
inline uint32_t step(const Forest& f, const Node* nodes, const int32_t* K, int32_t row, uint32_t at) {
  const Node nd = nodes[at];
  const int32_t key = K[row + int32_t(nd.column)];
  if constexpr (Special)
    if (nd.cat) return nd.left + categorical_right(f, nd, key);
  return nd.left + uint32_t(key >= nd.key);
}

// Walks `lanes` lanes (lane l reads its row's keys at K + row[l]) from their
// roots to their leaves: `depth` steps at most, fewer once no lane moves.
template <bool Special, int Lanes = 0>
inline void walk(const Forest& f, const int32_t* K, const int32_t* row, uint32_t* idx, int lanes,
                 uint32_t depth) {
  const Node* nodes = f.nodes();
  if constexpr (Lanes > 0) lanes = Lanes;  // a constant count unrolls into registers
  for (uint32_t s = 0; s < depth; ++s) {
    uint32_t moved = 0;
#pragma GCC unroll 16
    for (int l = 0; l < lanes; ++l) {
      const uint32_t next = step<Special>(f, nodes, K, row[l], idx[l]);
      moved |= next ^ idx[l];
      idx[l] = next;
    }
    if (!moved) break;
  }
}

inline void add_leaf(const Forest& f, const TreeInfo& t, uint32_t leaf, double* acc_row) {
  const double* v = f.values() + t.value_base + uint64_t(leaf - t.root) * t.width;
  if (t.output >= 0) {
    double& a = acc_row[t.output];
    a = t.f32 ? double(float(a) + float(*v)) : a + *v;
    return;
  }
  double* a = acc_row + t.first_output;
  for (uint32_t k = 0; k < t.width; ++k) a[k] = t.f32 ? double(float(a[k]) + float(v[k])) : a[k] + v[k];
}

// Default walker of full groups; the AVX-512 unit passes a gather-based one.
struct ScalarWalker {
  static void full(const Forest& f, const int32_t* K, const int32_t* row, uint32_t* idx,
                   uint32_t depth, bool special) {
    if (special) walk<true, kLanes>(f, K, row, idx, kLanes, depth);
    else walk<false, kLanes>(f, K, row, idx, kLanes, depth);
  }
};

template <class Walker>
void walk_group(const Forest& f, const int32_t* K, const int32_t* row, uint32_t* idx, int lanes,
                uint32_t depth, bool special) {
  if (lanes == kLanes) Walker::full(f, K, row, idx, depth, special);
  else if (special) walk<true>(f, K, row, idx, lanes, depth);
  else walk<false>(f, K, row, idx, lanes, depth);
}

// Batches: for each block of rows, every tree walks kLanes rows at a time.
template <class Walker>
void accumulate_rows(const Forest& f, const int32_t* K, size_t n, double* acc) {
  const TreeInfo* trees = f.trees();
  const size_t n_trees = f.n_trees(), n_out = f.n_outputs();
  const size_t width = size_t(f.n_features()) * f.n_copies();
  alignas(64) int32_t row[kLanes];
  alignas(64) uint32_t idx[kLanes];
  for (int l = 0; l < kLanes; ++l) row[l] = int32_t(l * width);
  for (size_t ti = 0; ti < n_trees; ++ti) {
    const TreeInfo& t = trees[ti];
    for (size_t r = 0; r < n; r += kLanes) {
      const int lanes = int(std::min<size_t>(kLanes, n - r));
      std::fill(idx, idx + lanes, t.root);
      walk_group<Walker>(f, K + r * width, row, idx, lanes, t.depth, t.special);
      for (int l = 0; l < lanes; ++l) add_leaf(f, t, idx[l], acc + (r + l) * n_out);
    }
  }
}

// Few rows: lanes are (tree, row) pairs, trees in order, so each row still
// adds its trees' values in tree order.
template <class Walker>
void accumulate_few(const Forest& f, const int32_t* K, size_t n, double* acc) {
  const TreeInfo* trees = f.trees();
  const size_t n_trees = f.n_trees(), n_out = f.n_outputs();
  const size_t width = size_t(f.n_features()) * f.n_copies();
  const size_t per_group = std::max<size_t>(1, kLanes / n);  // trees per group
  alignas(64) int32_t row[kLanes];
  alignas(64) uint32_t idx[kLanes];
  for (size_t t0 = 0; t0 < n_trees; t0 += per_group) {
    const size_t t1 = std::min(n_trees, t0 + per_group);
    int lanes = 0;
    uint32_t depth = 0;
    bool special = false;
    for (size_t ti = t0; ti < t1; ++ti) {
      depth = std::max(depth, trees[ti].depth);
      special |= trees[ti].special;
      for (size_t r = 0; r < n; ++r, ++lanes) {
        row[lanes] = int32_t(r * width);
        idx[lanes] = trees[ti].root;
      }
    }
    walk_group<Walker>(f, K, row, idx, lanes, depth, special);
    int l = 0;
    for (size_t ti = t0; ti < t1; ++ti)
      for (size_t r = 0; r < n; ++r, ++l) add_leaf(f, trees[ti], idx[l], acc + r * n_out);
  }
}

template <class Walker>
void accumulate(const Forest& f, const float* X, size_t n, size_t stride, double* acc) {
  const size_t width = size_t(f.n_features()) * f.n_copies();
  thread_local std::vector<int32_t> keys;
  keys.resize(std::min(n, kRowBlock) * width);
  for (size_t b = 0; b < n; b += kRowBlock) {
    const size_t m = std::min(kRowBlock, n - b);
    encode_rows(f, X + b * stride, m, stride, keys.data());
    if (m < size_t(kLanes) / 2)
      accumulate_few<Walker>(f, keys.data(), m, acc + b * f.n_outputs());
    else
      accumulate_rows<Walker>(f, keys.data(), m, acc + b * f.n_outputs());
  }
}

}  // namespace
}  // namespace engine::trees
