#include "trees/binned.hpp"

#include <algorithm>
#include <cstring>

#include "trees/forest.hpp"

namespace engine::trees {

BinnedForest bin_forest(const Forest& f) {
  const size_t nf = f.n_features();
  const Split* splits = f.node_splits();
  const uint32_t* node_left = f.node_left();
  const auto is_leaf = [&](uint32_t at) { return node_left[at] == at; };
  // A split's key column is feature + copy * nf (forest.hpp's Copy): bit 0
  // of the copy is "missing goes left", bit 1 "zero is missing".
  const auto feature_of = [&](uint32_t at) { return splits[at].column / kRowBlock % nf; };
  const auto copy_of = [&](uint32_t at) { return splits[at].column / kRowBlock / nf; };
  const auto kind_of = [&](uint32_t at) { return copy_of(at) >> 1; };
  const auto missing_left = [&](uint32_t at) { return (copy_of(at) & 1) == kMissingLeft; };

  // Each feature's distinct thresholds and the column kinds its splits read;
  // the forest is refused on the first tree the binned form cannot hold.
  std::vector<std::vector<uint32_t>> thresholds(nf);
  std::vector<uint8_t> kinds(nf, 0);  // bit per kind
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    const TreeInfo& t = f.trees()[ti];
    if (t.special || t.output < 0) return {};
    uint32_t leaves = 0;
    for (uint32_t at = t.root; at < t.root + t.n_nodes; ++at) {
      if (is_leaf(at)) {
        ++leaves;
        continue;
      }
      thresholds[feature_of(at)].push_back(splits[at].key);
      kinds[feature_of(at)] |= uint8_t(1u << kind_of(at));
    }
    if (leaves > 64 && t.depth > kTopDepth + 2) return {};
  }
  BinnedForest b;
  // A feature with more distinct thresholds than a byte can rank (two heads
  // trained on different rows have different bin boundaries) gets one bin
  // column per run of kKeysPerColumn consecutive thresholds: "x >= t" is
  // "bin > rank of t" in whichever run holds t.
  constexpr uint32_t kKeysPerColumn = kMissingBin - 1;
  std::vector<uint32_t> first_of(nf, 0);  // feature -> its first BinFeature
  for (size_t j = 0; j < nf; ++j) {
    std::vector<uint32_t>& keys = thresholds[j];
    if (keys.empty()) continue;
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    first_of[j] = uint32_t(b.features.size());
    for (size_t k0 = 0; k0 < keys.size(); k0 += kKeysPerColumn) {
      BinFeature bf{uint32_t(j), uint32_t(b.key_blocks.size()), {UINT32_MAX, UINT32_MAX},
                    uint32_t(std::min<size_t>(keys.size() - k0, kKeysPerColumn))};
      for (uint32_t kind = 0; kind < 2; ++kind)
        if (kinds[j] >> kind & 1) bf.column[kind] = b.n_columns++;
      b.features.push_back(bf);
      std::vector<uint32_t> run(keys.begin() + int64_t(k0),
                                keys.begin() + int64_t(std::min<size_t>(keys.size(), k0 + kKeysPerColumn)));
      run.resize(256, UINT32_MAX);
      // Laid out as BinFeature says, in 16-key blocks.
      std::vector<uint32_t> laid_out;
      for (size_t i = 0; i < 256 / kKeyRun; ++i) laid_out.push_back(run[kKeyRun * i + kKeyRun - 1]);
      laid_out.insert(laid_out.end(), run.begin(), run.end());
      for (size_t k = 0; k < kKeyRun; ++k)
        for (size_t i = 0; i < 256 / kKeyRun; ++i) laid_out.push_back(run[kKeyRun * i + k]);
      for (size_t at = 0; at < laid_out.size(); at += 16) {
        b.key_blocks.emplace_back();
        std::copy_n(laid_out.begin() + int64_t(at), 16, b.key_blocks.back().key);
      }
    }
  }
  for (BinFeature& bf : b.features)
    for (uint32_t& c : bf.column) c = std::min(c, b.n_columns);  // the spare
  b.n_chunks = (b.n_columns + 1 + 127) / 128;
  b.row_bytes = 128 * b.n_chunks;
  if (2 * b.row_bytes > 65536) return {};  // block columns (two copies) are 16-bit

  b.trees.resize(f.n_trees());
  b.info.resize(f.n_trees());
  b.output_f32.assign(f.n_outputs(), 0);
  uint32_t max_depth = 0;
  bool all_f32 = true;
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    const TreeInfo& t = f.trees()[ti];
    b.output_f32[size_t(t.output)] = t.f32;
    max_depth = std::max(max_depth, t.depth);
    all_f32 &= t.f32;
  }
  BinnedComplete& complete = b.complete;
  if (max_depth <= kCompleteMaxDepth) {
    complete.depth = std::max<uint32_t>(max_depth, 1);
    complete.nodes.resize(f.n_trees() << complete.depth, 0);
    if (all_f32) complete.values_f32.resize(complete.nodes.size());
    else complete.values_f64.resize(complete.nodes.size());
  }
  std::vector<uint8_t> id;  // binned id of node root + q
  std::vector<uint32_t> depth;
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    const TreeInfo& t = f.trees()[ti];
    BinnedTree& bt = b.trees[ti];
    BinnedTreeInfo& info = b.info[ti];
    bt = BinnedTree{};
    info.chunk_mask_at = uint32_t(b.chunk_masks.size());
    info.f32 = t.f32;
    info.output = uint32_t(t.output);
    const size_t first_mask = b.chunk_masks.size();
    b.chunk_masks.resize(first_mask + b.n_chunks - 1, 0);
    const auto child = [&](uint32_t q, uint32_t side) { return node_left[t.root + q] + side - t.root; };
    depth.assign(t.n_nodes, 0);
    uint32_t leaves = 0;
    for (uint32_t q = 0; q < t.n_nodes; ++q) {
      if (is_leaf(t.root + q)) ++leaves;
      else depth[child(q, 0)] = depth[child(q, 1)] = depth[q] + 1;
    }
    // The tables hold the splits above `cut`; nodes at depth `cut` and leaves
    // above it are the tables' leaves (exits to the bottom in a deep tree).
    const bool deep = leaves > 64;
    const uint32_t cut = deep ? kTopDepth : UINT32_MAX;
    const auto in_tables = [&](uint32_t q) { return !is_leaf(t.root + q) && depth[q] < cut; };
    info.depth = uint8_t(std::min<uint32_t>(t.depth, deep ? kTopDepth : 255));
    // Splits breadth first from the root, so that a split's parent has a
    // lower id (the row-set walk's order, binned_alive_avx512.hpp); exits after.
    id.assign(t.n_nodes, 0);
    uint8_t next_split = 0, exits = 0;
    std::vector<uint32_t> queue;
    if (in_tables(0)) queue.push_back(0);
    for (size_t at = 0; at < queue.size(); ++at) {
      const uint32_t q = queue[at];
      id[q] = next_split++;
      for (uint32_t side = 0; side < 2; ++side)
        if (in_tables(child(q, side))) queue.push_back(child(q, side));
    }
    for (uint32_t q = 0; q < t.n_nodes; ++q)
      if (!in_tables(q) && depth[q] <= cut) id[q] = uint8_t(kBinnedLeaf + exits++);
    info.root = id[0];
    info.n_splits = next_split;
    // A split's bin column and rank (binned.hpp).
    const auto encode = [&](uint32_t q, uint32_t& column, uint8_t& rank) {
      const uint32_t at = t.root + q;
      const std::vector<uint32_t>& keys = thresholds[feature_of(at)];
      const size_t position = size_t(std::lower_bound(keys.begin(), keys.end(), splits[at].key) - keys.begin());
      column = b.features[first_of[feature_of(at)] + position / kKeysPerColumn].column[kind_of(at)];
      rank = uint8_t(position % kKeysPerColumn);
    };
    const auto value = [&](uint32_t q) {
      const double v = f.values()[t.value_base + q];
      return t.f32 ? double(float(v)) : v;
    };
    const auto set_values = [&](auto& values, uint32_t at, uint32_t count, double v) {
      for (uint32_t i = at; i < at + count; ++i) {
        if (t.f32) values.f32[i] = float(v);
        else values.f64[i] = v;
      }
    };
    for (uint32_t q = 0; q < t.n_nodes; ++q) {
      if (depth[q] > cut) continue;
      const uint8_t i = id[q];
      if (!in_tables(q)) {
        bt.left[i] = bt.right[i] = bt.child[2 * i] = bt.child[2 * i + 1] = i;
        if (!deep) set_values(bt.values, i - kBinnedLeaf, 1, value(q));
        continue;
      }
      if (missing_left(t.root + q)) info.missing_left |= uint64_t{1} << i;
      uint32_t column;
      encode(q, column, bt.rank[i]);
      bt.column[i] = uint8_t(column & 127);
      bt.block_column[i] = uint16_t(missing_left(t.root + q) ? column + b.row_bytes : column);
      if (column >= 128) b.chunk_masks[first_mask + column / 128 - 1] |= uint64_t{1} << i;
      bt.left[i] = bt.child[2 * i] = id[child(q, 0)];
      bt.right[i] = bt.child[2 * i + 1] = id[child(q, 1)];
    }
    if (complete.depth) {
      // Positions p of the complete tree take node source[p] (a leaf stands
      // in for its padding below), as Forest::add_complete lays them out.
      const uint32_t internal = (1u << complete.depth) - 1, base = uint32_t(ti) << complete.depth;
      std::vector<uint32_t> source(2 * internal + 1);
      source[0] = 0;
      for (uint32_t p = 0; p < internal; ++p) {
        const uint32_t q = source[p];
        const bool leaf = is_leaf(t.root + q);
        source[2 * p + 1] = leaf ? q : child(q, 0);
        source[2 * p + 2] = leaf ? q : child(q, 1);
        if (leaf) continue;  // span 0: padding goes left
        uint32_t column;
        uint8_t rank;
        encode(q, column, rank);
        const uint32_t lo = rank + 1u, span = (missing_left(t.root + q) ? 255u : 256u) - lo;
        complete.nodes[base + p] = column | lo << 16 | span << 24;
      }
      for (uint32_t p = 0; p <= internal; ++p) {
        const double v = value(source[internal + p]);
        if (all_f32) complete.values_f32[base + p] = float(v);
        else complete.values_f64[base + p] = v;
      }
    }
    if (!deep) continue;
    info.bottom = int32_t(b.bottoms.size());
    BinnedBottom& bb = b.bottoms.emplace_back();
    bb = BinnedBottom{};
    const auto slot = [&](uint32_t group, uint32_t s, uint32_t q) {
      uint32_t column;
      uint8_t rank;
      encode(q, column, rank);
      const uint32_t block_column = missing_left(t.root + q) ? column + b.row_bytes : column;
      bb.slots[group][bb.n_slots[group]++] = BottomSlot{uint16_t(block_column), rank, uint8_t(s)};
    };
    for (uint32_t q = 0; q < t.n_nodes; ++q) {
      if (in_tables(q) || depth[q] > cut) continue;
      const uint32_t j = id[q] - kBinnedLeaf;
      if (is_leaf(t.root + q)) {
        set_values(bb.values, 4 * j, 4, value(q));
        continue;
      }
      slot(0, j, q);
      for (uint32_t b1 = 0; b1 < 2; ++b1) {
        const uint32_t c = child(q, b1), s2 = 2 * j + b1;
        if (is_leaf(t.root + c)) {
          set_values(bb.values, 2 * s2, 2, value(c));
          continue;
        }
        slot(1 + s2 / 64, s2 % 64, c);
        for (uint32_t b2 = 0; b2 < 2; ++b2) set_values(bb.values, 2 * s2 + b2, 1, value(child(c, b2)));
      }
    }
  }
  // Each tree's children as AliveSteps, and its leaf values as byte planes.
  b.leaf_planes.assign(f.n_trees(), LeafPlanes{});
  for (size_t ti = 0; ti < f.n_trees(); ++ti) {
    BinnedTreeInfo& info = b.info[ti];
    if (info.bottom >= 0) continue;
    const BinnedTree& bt = b.trees[ti];
    for (uint32_t j = 0; j < 64; ++j) {
      uint8_t bytes[8] = {};
      if (info.f32) std::memcpy(bytes, &bt.values.f32[j], sizeof(float));
      else std::memcpy(bytes, &bt.values.f64[j], sizeof(double));
      for (int k = 0; k < 8; ++k) b.leaf_planes[ti].plane[k][j] = bytes[k];
    }
    info.steps_at = uint32_t(b.alive_steps.size());
    for (uint32_t i = 0; i < info.n_splits; ++i) b.alive_steps.push_back(AliveStep{0, bt.left[i], bt.right[i]});
  }
  // The distinct splits of the trees without a bottom (binned.hpp's split_pairs).
  const auto pair_code = [](const BinnedTree& bt, uint32_t i) { return uint32_t(bt.block_column[i]) << 8 | bt.rank[i]; };
  std::vector<uint32_t> pairs;
  for (size_t ti = 0; ti < f.n_trees(); ++ti)
    if (b.info[ti].bottom < 0)
      for (uint32_t i = 0; i < b.info[ti].n_splits; ++i) pairs.push_back(pair_code(b.trees[ti], i));
  const size_t n_splits = pairs.size();
  std::sort(pairs.begin(), pairs.end());
  pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
  if (!pairs.empty() && 2 * pairs.size() <= n_splits && pairs.size() <= 65536) {
    for (size_t ti = 0; ti < f.n_trees(); ++ti)
      if (b.info[ti].bottom < 0)
        for (uint32_t i = 0; i < b.info[ti].n_splits; ++i) {
          b.alive_steps[b.info[ti].steps_at + i].pair =
              uint16_t(std::lower_bound(pairs.begin(), pairs.end(), pair_code(b.trees[ti], i)) - pairs.begin());
        }
    b.split_pairs = std::move(pairs);
  }
  b.usable = true;
  return b;
}

}  // namespace engine::trees
