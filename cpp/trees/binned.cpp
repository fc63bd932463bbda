#include "trees/binned.hpp"

#include <algorithm>
#include <cmath>

#include "trees/forest.hpp"
#include "trees/keys.hpp"

namespace engine::trees {

BinnedForest bin_forest(const Forest& f) {
  const size_t nf = f.n_features();
  const Split* splits = f.node_splits();
  const uint32_t* node_left = f.node_left();
  const auto is_leaf = [&](uint32_t at) { return node_left[at] == at; };

  // Each feature's distinct thresholds and the copies its splits read; the
  // forest is refused on the first tree the binned form cannot hold.
  std::vector<std::vector<uint32_t>> thresholds(nf);
  std::vector<uint8_t> copies(nf, 0);  // bit per copy
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    const TreeInfo& t = f.trees()[ti];
    if (t.special || t.output < 0) return {};
    uint32_t leaves = 0;
    for (uint32_t at = t.root; at < t.root + t.n_nodes; ++at) {
      if (is_leaf(at)) {
        ++leaves;
        continue;
      }
      const uint32_t key_column = splits[at].column / kRowBlock;
      thresholds[key_column % nf].push_back(splits[at].key);
      copies[key_column % nf] |= uint8_t(1u << (key_column / nf));
    }
    if (leaves > 64) return {};
  }
  BinnedForest b;
  std::vector<uint32_t> column_of(4 * nf, 0);  // key column -> bin column
  uint32_t n_columns = 0;
  for (size_t j = 0; j < nf; ++j) {
    std::vector<uint32_t>& keys = thresholds[j];
    if (keys.empty()) continue;
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    if (keys.size() > 255) return {};
    BinFeature bf{uint32_t(j), uint32_t(b.key_blocks.size()), {-1, -1, -1, -1}};
    for (uint32_t c = 0; c < 4; ++c)
      if (copies[j] >> c & 1) {
        column_of[j + c * nf] = n_columns;
        bf.column[c] = int32_t(n_columns++);
      }
    b.features.push_back(bf);
    keys.resize(256, UINT32_MAX);
    KeyBlock pivots;
    for (size_t i = 0; i < 16; ++i) pivots.key[i] = keys[16 * i + 15];
    b.key_blocks.push_back(pivots);
    for (size_t i = 0; i < 16; ++i) {
      b.key_blocks.emplace_back();
      std::copy_n(keys.begin() + int64_t(16 * i), 16, b.key_blocks.back().key);
    }
  }
  if (n_columns > 65535) return {};
  b.n_chunks = std::max<uint32_t>(1, (n_columns + 127) / 128);
  b.row_bytes = 128 * b.n_chunks;

  b.trees.resize(f.n_trees());
  b.info.resize(f.n_trees());
  std::vector<uint8_t> id;  // binned id of node root + q (the layout is breadth first already)
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    const TreeInfo& t = f.trees()[ti];
    BinnedTree& bt = b.trees[ti];
    BinnedTreeInfo& info = b.info[ti];
    std::fill(std::begin(bt.column), std::end(bt.column), 0);
    std::fill(std::begin(bt.rank), std::end(bt.rank), 0);
    std::fill(std::begin(bt.left), std::end(bt.left), 0);
    std::fill(std::begin(bt.right), std::end(bt.right), 0);
    std::fill(std::begin(bt.values), std::end(bt.values), 0.0);
    std::fill(std::begin(bt.full_column), std::end(bt.full_column), 0);
    std::fill(std::begin(bt.child), std::end(bt.child), 0);
    info.chunk_mask_at = uint32_t(b.chunk_masks.size());
    info.depth = uint8_t(std::min<uint32_t>(t.depth, 255));
    info.f32 = t.f32;
    info.output = uint32_t(t.output);
    const size_t first_mask = b.chunk_masks.size();
    b.chunk_masks.resize(first_mask + b.n_chunks - 1, 0);
    id.assign(t.n_nodes, 0);
    uint8_t splits_seen = 0, leaves_seen = 0;
    for (uint32_t q = 0; q < t.n_nodes; ++q)
      id[q] = is_leaf(t.root + q) ? uint8_t(kBinnedLeaf + leaves_seen++) : splits_seen++;
    info.root = id[0];
    info.n_splits = splits_seen;
    for (uint32_t q = 0; q < t.n_nodes; ++q) {
      const uint32_t at = t.root + q;
      const uint8_t i = id[q];
      if (is_leaf(at)) {
        bt.left[i] = bt.right[i] = bt.child[2 * i] = bt.child[2 * i + 1] = i;
        const double v = f.values()[t.value_base + q];
        bt.values[i - kBinnedLeaf] = t.f32 ? double(float(v)) : v;
        continue;
      }
      const uint32_t key_column = splits[at].column / kRowBlock;
      const uint32_t column = column_of[key_column];
      const std::vector<uint32_t>& keys = thresholds[key_column % nf];
      bt.column[i] = uint8_t(column & 127);
      bt.full_column[i] = uint16_t(column);
      bt.rank[i] = uint8_t(std::lower_bound(keys.begin(), keys.end(), splits[at].key) - keys.begin());
      if (column >= 128) b.chunk_masks[first_mask + column / 128 - 1] |= uint64_t{1} << i;
      bt.left[i] = id[node_left[at] - t.root];
      bt.right[i] = id[node_left[at] + 1 - t.root];
      bt.child[2 * i] = bt.left[i];
      bt.child[2 * i + 1] = bt.right[i];
    }
  }
  b.usable = true;
  return b;
}

}  // namespace engine::trees
