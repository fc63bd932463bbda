#include "trees/forest.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "trees/eval.hpp"
#include "trees/keys.hpp"

namespace engine::trees {
namespace {

[[noreturn]] void corrupt(const std::string& what) { throw FormatError("forest: " + what); }

std::string at_node(size_t tree, size_t node) {
  return "tree " + std::to_string(tree) + " node " + std::to_string(node);
}

void check_head(const HeadSpec& h, size_t i) {
  const std::string where = "head " + std::to_string(i) + " ('" + h.name + "')";
  if (h.n_outputs == 0) corrupt(where + ": n_outputs is 0");
  if (h.base_score.size() != h.n_outputs)
    corrupt(where + ": base_score has " + std::to_string(h.base_score.size()) + " values for " +
            std::to_string(h.n_outputs) + " outputs");
  for (double b : h.base_score)
    if (!std::isfinite(b)) corrupt(where + ": base_score is not finite");
  if (h.leaf_width != 1 && h.leaf_width != h.n_outputs)
    corrupt(where + ": leaf_width must be 1 or n_outputs");
  if (h.transform == Transform::softmax && h.n_outputs < 2)
    corrupt(where + ": softmax needs at least two outputs");
  if (!std::isfinite(h.sigmoid_alpha)) corrupt(where + ": sigmoid_alpha is not finite");
}

// Levels of t worth storing complete: all of them unless padding would more
// than quadruple the tree.
uint32_t complete_depth(const TreeInfo& t) {
  uint32_t top = std::min(t.depth, kMaxCompleteDepth);
  while (top > 0 && (uint64_t{2} << top) - 1 > 4 * uint64_t(t.n_nodes)) --top;
  return top;
}

}  // namespace

Forest Forest::build(const ForestInput& in) {
  Forest f;
  if (in.n_features == 0) corrupt("n_features is 0");
  if (in.heads.empty()) corrupt("no heads");
  if (in.n_nodes >= (size_t{1} << 31) || uint64_t(in.n_features) * 4 * kRowBlock >= (uint64_t{1} << 31))
    corrupt("too many nodes or features");
  f.trees_.resize(in.n_trees);
  f.n_features_ = in.n_features;
  f.heads_ = in.heads;

  size_t trees_in_heads = 0;
  for (size_t h = 0; h < in.heads.size(); ++h) {
    check_head(in.heads[h], h);
    f.head_first_output_.push_back(f.n_outputs_);
    f.n_outputs_ += in.heads[h].n_outputs;
    trees_in_heads += in.heads[h].n_trees;
    const bool f32 = in.heads[h].accumulate_f32;
    for (double b : in.heads[h].base_score) f.base_.push_back(f32 ? double(float(b)) : b);
  }
  if (trees_in_heads != in.n_trees)
    corrupt("heads hold " + std::to_string(trees_in_heads) + " trees, arrays " + std::to_string(in.n_trees));
  if (in.tree_offsets[0] != 0 || uint64_t(in.tree_offsets[in.n_trees]) != in.n_nodes)
    corrupt("tree_offsets must start at 0 and end at the node count");

  f.node_splits_.resize(in.n_nodes);
  f.node_left_.resize(in.n_nodes);
  f.node_cat_.assign(in.n_nodes, 0);
  f.values_.assign(in.n_leaf_values, 0.0);
  std::vector<uint32_t> depth, parents, order;
  // Per tree, the mean path length if every split sent half the rows each way.
  std::vector<double> even_path(in.n_trees, 0.0);
  size_t tree = 0, value_base = 0;
  for (size_t h = 0; h < in.heads.size(); ++h) {
    const HeadSpec& head = in.heads[h];
    const uint64_t head_first_node = uint64_t(in.tree_offsets[tree]);
    for (size_t k = 0; k < head.n_trees; ++k, ++tree) {
      const int64_t begin = in.tree_offsets[tree], end = in.tree_offsets[tree + 1];
      if (end <= begin || uint64_t(end) > in.n_nodes)
        corrupt("tree_offsets not increasing at tree " + std::to_string(tree));
      const size_t m = size_t(end - begin);
      TreeInfo& t = f.trees_[tree];
      t.root = uint32_t(begin);
      t.n_nodes = uint32_t(m);
      t.width = head.leaf_width;
      t.f32 = head.accumulate_f32;
      t.first_output = f.head_first_output_[h];
      t.value_base = value_base + (uint64_t(begin) - head_first_node) * head.leaf_width;
      if (t.value_base + m * head.leaf_width > in.n_leaf_values) corrupt("leaf_value too short");
      const int32_t out = in.tree_output[tree];
      if (head.leaf_width == 1) {
        if (out < 0 || uint32_t(out) >= head.n_outputs)
          corrupt("tree " + std::to_string(tree) + ": tree_output out of range");
        t.output = int32_t(t.first_output) + out;
      } else {
        if (out != -1) corrupt("tree " + std::to_string(tree) + ": vector-leaf trees need tree_output -1");
        t.output = -1;
      }
      // Validation, in the file's order: every index is checked before use,
      // and children after their parent with one parent each make a tree.
      depth.assign(m, 0);
      parents.assign(m, 0);
      for (size_t i = 0; i < m; ++i) {
        const size_t g = size_t(begin) + i;
        const int32_t feat = in.feature[g];
        if (i > 0 && parents[i] != 1) corrupt(at_node(tree, i) + ": has no parent or several");
        if (feat == -1) {
          if (in.left[g] != -1 || in.right[g] != -1) corrupt(at_node(tree, i) + ": leaf with children");
          const double* v = in.leaf_value + t.value_base + i * head.leaf_width;
          for (uint32_t w = 0; w < head.leaf_width; ++w)
            if (!std::isfinite(v[w])) corrupt(at_node(tree, i) + ": leaf value is not finite");
          t.depth = std::max(t.depth, depth[i]);
          even_path[tree] += double(depth[i]) * std::ldexp(1.0, -int(depth[i]));
          ++f.n_leaves_;
          continue;
        }
        if (feat < 0 || uint32_t(feat) >= in.n_features)
          corrupt(at_node(tree, i) + ": feature " + std::to_string(feat) + " out of range");
        const int32_t l = in.left[g], r = in.right[g];
        if (l <= int64_t(i) || r <= int64_t(i) || size_t(l) >= m || size_t(r) >= m || l == r)
          corrupt(at_node(tree, i) + ": children must be distinct nodes after it in its tree");
        ++parents[size_t(l)];
        ++parents[size_t(r)];
        depth[size_t(l)] = depth[size_t(r)] = depth[i] + 1;
        if (in.flags[g] & ~(kDefaultLeft | kCategorical | kZeroIsMissing | kCatIntCast))
          corrupt(at_node(tree, i) + ": unknown flag bits");
        if (in.flags[g] & kCategorical) {
          const int64_t cb = in.cat_begin[g], ce = in.cat_end[g];
          if (cb < 0 || ce < cb || uint64_t(ce) > in.n_cat_words || ce - cb > (int64_t{1} << 26))
            corrupt(at_node(tree, i) + ": categorical bitset out of range");
        } else if (std::isnan(in.threshold[g])) {
          corrupt(at_node(tree, i) + ": threshold is NaN");
        }
        if (in.flags[g] & kZeroIsMissing) f.n_copies_ = 4;
      }
      f.max_depth_ = std::max(f.max_depth_, t.depth);
      // Layout: breadth first, siblings side by side (order[q] is the file's
      // index of the node stored at root + q).
      order.assign(1, 0);
      for (size_t q = 0; q < order.size(); ++q) {
        const size_t i = order[q], g = size_t(begin) + i;
        const uint32_t at = uint32_t(begin + int64_t(q));
        Split& nd = f.node_splits_[at];
        const size_t w = head.leaf_width;
        if (in.feature[g] == -1) {
          nd = Split{uint32_t(in.n_features * kMissingLeft * kRowBlock), kMissingHigh};
          f.node_left_[at] = at;
          std::copy_n(in.leaf_value + t.value_base + i * w, w, f.values_.begin() + t.value_base + q * w);
          continue;
        }
        const uint8_t flags = in.flags[g];
        const uint32_t copy = ((flags & kDefaultLeft) ? kMissingLeft : kMissingRight) |
                              ((flags & kZeroIsMissing) ? kZeroMissingRight : 0u);
        nd.column = uint32_t((in.feature[g] + copy * in.n_features) * kRowBlock);
        nd.key = float_key(in.threshold[g]);
        f.node_left_[at] = uint32_t(begin + int64_t(order.size()));
        if (flags & kCategorical) {
          f.cats_.push_back(CatRange{uint32_t(in.cat_begin[g]), uint32_t(in.cat_end[g] - in.cat_begin[g]),
                                     (flags & kCatIntCast) != 0});
          f.node_cat_[at] = uint32_t(f.cats_.size());
          t.special = true;
        }
        order.push_back(uint32_t(in.left[g]));
        order.push_back(uint32_t(in.right[g]));
      }
    }
    value_base += (uint64_t(in.tree_offsets[tree]) - head_first_node) * head.leaf_width;
  }
  if (value_base != in.n_leaf_values)
    corrupt("leaf_value has " + std::to_string(in.n_leaf_values) + " values, the heads need " +
            std::to_string(value_base));
  // Leaf-wise forests (most trees too deep to store complete) cap every top
  // at the mean path length under even splits, rounded up; one cap for all
  // trees so that a small batch's lanes over several trees (walk_pairs) can
  // share the tops. Depth-limited forests keep whole trees complete.
  double path_sum = 0;
  size_t plain = 0, too_deep = 0;
  for (size_t i = 0; i < f.trees_.size(); ++i) {
    const TreeInfo& t = f.trees_[i];
    if (t.special) continue;
    path_sum += even_path[i];
    ++plain;
    too_deep += complete_depth(t) < t.depth;
  }
  const uint32_t cap = 2 * too_deep > plain ? uint32_t(std::ceil(path_sum / double(plain) - 1e-9))
                                            : kMaxCompleteDepth;
  for (TreeInfo& t : f.trees_) f.add_complete(t, cap);
  if (in.n_cat_words > std::numeric_limits<uint32_t>::max()) corrupt("cat_words too long");
  f.cat_words_.assign(in.cat_words, in.cat_words + in.n_cat_words);
  f.binned_ = bin_forest(f);
  return f;
}

// Stores the tree's top levels complete (forest.hpp says which and why).
void Forest::add_complete(TreeInfo& t, uint32_t cap) {
  if (t.special) return;
  const uint32_t top = std::min(complete_depth(t), cap);
  t.top = top;
  if (!top) return;
  const uint64_t internal = (uint64_t{1} << top) - 1;
  t.complete_base = complete_nodes_.size();
  t.leaf_base = complete_bottom_.size();
  // source[p]: the node (global index) whose place complete position p takes.
  std::vector<uint32_t> source(2 * internal + 1);
  source[0] = t.root;
  const Split always_left{uint32_t(n_features_ * kMissingLeft * kRowBlock),
                                 kMissingHigh};
  for (uint64_t p = 0; p < internal; ++p) {
    const uint32_t left = node_left_[source[p]];
    const bool leaf = left == source[p];
    complete_nodes_.push_back(leaf ? always_left : node_splits_[source[p]]);
    source[2 * p + 1] = leaf ? source[p] : left;
    source[2 * p + 2] = leaf ? source[p] : left + 1;
  }
  complete_bottom_.insert(complete_bottom_.end(), source.begin() + int64_t(internal), source.end());
  t.values_at_bottom = top == t.depth && t.width == 1;
  for (uint64_t p = internal; p < source.size(); ++p)
    complete_values_.push_back(t.values_at_bottom ? values_[t.value_base + (source[p] - t.root)] : 0.0);
}

void Forest::finish_rows(const double* acc, size_t n, bool raw, float* out) const {
  for (size_t r = 0; r < n; ++r) {
    const double* a = acc + r * n_outputs_;
    float* o = out + r * n_outputs_;
    for (size_t h = 0; h < heads_.size(); ++h) {
      const HeadSpec& head = heads_[h];
      const uint32_t c0 = head_first_output_[h], c1 = c0 + head.n_outputs;
      if (raw || head.transform == Transform::identity) {
        for (uint32_t c = c0; c < c1; ++c) o[c] = float(a[c]);
      } else if (head.transform == Transform::sigmoid) {
        for (uint32_t c = c0; c < c1; ++c) o[c] = float(1.0 / (1.0 + std::exp(-head.sigmoid_alpha * a[c])));
      } else {  // softmax, shifted by the maximum so exp cannot overflow
        const double top = *std::max_element(a + c0, a + c1);
        double sum = 0;
        for (uint32_t c = c0; c < c1; ++c) sum += std::exp(a[c] - top);
        for (uint32_t c = c0; c < c1; ++c) o[c] = float(std::exp(a[c] - top) / sum);
      }
    }
  }
}

// Splits the rows into chunks (about one per thread, at most kChunk rows so
// the accumulators stay small), accumulates each and writes its outputs.
template <class Fill>
void Forest::run_chunks(size_t n, bool raw, int threads, float* out, Fill fill) const {
  constexpr size_t kChunk = 1024;
  const size_t workers = size_t(std::max(1, threads));
  const size_t per = std::min(kChunk, std::max<size_t>(16, (n + workers - 1) / workers));
  const size_t chunks = (n + per - 1) / per;
  parallel_for(chunks, threads, [&](size_t c0, size_t c1) {
    std::vector<double> acc(per * n_outputs_);
    for (size_t c = c0; c < c1; ++c) {
      const size_t r0 = c * per, m = std::min(n, r0 + per) - r0;
      for (size_t r = 0; r < m; ++r)
        std::copy(base_.begin(), base_.end(), acc.begin() + r * n_outputs_);
      fill(r0, m, acc.data());
      finish_rows(acc.data(), m, raw, out + r0 * n_outputs_);
    }
  });
}

void Forest::predict(const float* X, size_t n, size_t stride, bool raw, int threads, float* out,
                     const EvalKernels* kernels, size_t tree_begin, size_t tree_end) const {
  if (stride < n_features_) throw ValueError("X: rows are shorter than the model's features");
  tree_end = std::min(tree_end, trees_.size());
  if (tree_begin > tree_end)
    throw ValueError("trees: expected 0 <= begin <= end <= " + std::to_string(trees_.size()) + ", got begin " +
                     std::to_string(tree_begin));
  const EvalKernels& k = kernels ? *kernels : active_eval();
  run_chunks(n, raw, threads, out, [&](size_t r0, size_t m, double* acc) {
    k.accumulate(*this, X + r0 * stride, m, stride, acc, tree_begin, tree_end);
  });
}

void Forest::init_sums(size_t n, double* acc) const {
  for (size_t r = 0; r < n; ++r) std::copy(base_.begin(), base_.end(), acc + r * n_outputs_);
}

void Forest::accumulate(const float* X, size_t n, size_t stride, double* acc, size_t tree_begin,
                        size_t tree_end) const {
  if (stride < n_features_) throw ValueError("X: rows are shorter than the model's features");
  if (tree_begin > tree_end || tree_end > trees_.size()) throw ValueError("trees: a range outside the forest");
  if (n) active_eval().accumulate(*this, X, n, stride, acc, tree_begin, tree_end);
}

void Forest::predict_columns(const float* const* columns, size_t n, bool raw, int threads,
                             float* out) const {
  const EvalKernels& k = active_eval();
  const size_t nf = n_features_;
  run_chunks(n, raw, threads, out, [&](size_t r0, size_t m, double* acc) {
    thread_local std::vector<float> rows;
    rows.resize(m * nf);
    for (size_t j = 0; j < nf; ++j) {
      const float* col = columns[j];
      for (size_t r = 0; r < m; ++r)
        rows[r * nf + j] = col ? col[r0 + r] : std::numeric_limits<float>::quiet_NaN();
    }
    k.accumulate(*this, rows.data(), m, nf, acc, 0, trees_.size());
  });
}

}  // namespace engine::trees
