// A compiled tree ensemble, packed for evaluation: immutable once built, so
// one Forest serves any number of threads.
//
// Input is the compiler's canonical form (engine/forest/ir.py): per node a
// feature, a float32 threshold (left iff x < threshold), tree-local children
// with larger indices than their parent, flags (default left, categorical,
// zero is missing) and categorical bitsets. Building validates every index
// before anything is dereferenced, so a hostile file fails with FormatError.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "trees/binned.hpp"

namespace engine::trees {

struct EvalKernels;

enum class Transform : uint8_t { identity, sigmoid, softmax };

// IR flag bits (engine/forest/ir.py).
constexpr uint8_t kDefaultLeft = 1, kCategorical = 2, kZeroIsMissing = 4, kCatIntCast = 8;

struct HeadSpec {
  std::string name;
  uint32_t n_outputs = 1;
  Transform transform = Transform::identity;
  double sigmoid_alpha = 1.0;
  bool accumulate_f32 = false;  // XGBoost's float sum; otherwise LightGBM's double sum
  uint32_t n_trees = 0;         // the heads' trees follow each other in the arrays
  uint32_t leaf_width = 1;      // 1, or n_outputs for vector-leaf trees
  std::vector<double> base_score;  // n_outputs, margin space
};

// The IR arrays of every head, concatenated head after head: tree_offsets
// index the concatenated node arrays; left/right stay local to their tree;
// each head's leaf values (n_nodes_h * leaf_width_h) follow the previous head's.
struct ForestInput {
  uint32_t n_features = 0;
  std::vector<HeadSpec> heads;
  const int64_t* tree_offsets = nullptr;  // n_trees + 1, global node offsets
  const int32_t* tree_output = nullptr;   // n_trees, head-local output or -1
  const int32_t* feature = nullptr;       // n_nodes
  const float* threshold = nullptr;
  const int32_t* left = nullptr;
  const int32_t* right = nullptr;
  const uint8_t* flags = nullptr;
  const int64_t* cat_begin = nullptr;
  const int64_t* cat_end = nullptr;
  const uint32_t* cat_words = nullptr;
  size_t n_cat_words = 0;
  const double* leaf_value = nullptr;  // concatenated per head: n_nodes_h * leaf_width_h
  size_t n_leaf_values = 0;
  size_t n_trees = 0, n_nodes = 0;
};

// Rows are encoded before the walk (walk.hpp): each float becomes a uint32
// key whose order is the float order (-0 and +0 equal), in several
// copies that differ only in where a missing value lands: UINT32_MAX in the
// copies read by splits that send it right, 0 where it goes left;
// the last two copies also count |x| <= 1e-35 as missing (LightGBM's zero
// as missing). A split then needs one integer compare and no NaN test:
//   go_right = key(row, column) >= node.key
//
// Trees are laid out breadth first with siblings side by side, so the next
// node is `left + go_right`, with no branch or select. A node is split over
// parallel arrays (Split: 8 bytes, left child: 4, categorical set: 4), so
// that a step addresses each with a scaled index, no multiply, and the
// categorical array is read only by forests that have such splits. Leaves
// compare against UINT32_MAX in a copy whose keys never reach it and point
// to themselves, so a walk may take more steps than a row's path without
// leaving its leaf.
constexpr size_t kRowBlock = 32;  // rows encoded and walked together

struct Split {
  uint32_t column;  // (feature + copy * n_features) * kRowBlock: the key's offset in a block
  uint32_t key;     // the threshold's key
};
// The top T levels of a tree are also stored complete: every path padded to
// length T with splits that always go left, so that node i's children are
// 2i + 1 and 2i + 2 and those levels take exactly T steps of
//   i = 2i + 1 + go_right
// with no child index to load and no check for having arrived. Position p of
// level T then names the node where the general walk goes on (a leaf when
// the tree is no deeper than T). T is the tree's depth for shallow trees
// (XGBoost's depth-limited ones), fewer levels when padding would more than
// quadruple the tree, 0 for trees with categorical splits; and never more than
// the forest's mean path length under even splits, rounded up. Leaf-wise trees
// (LightGBM's 63 leaves) end most paths after 4-6 splits but reach 15-20: a
// top of 7 made every row take 7 steps where most need 5 (measured: 4 levels
// are 8-15 % faster on them; XGBoost's full depth-6 trees keep all 6).
constexpr uint32_t kMaxCompleteDepth = 10;

enum Copy : uint32_t { kMissingRight = 0, kMissingLeft = 1, kZeroMissingRight = 2, kZeroMissingLeft = 3 };

struct TreeInfo {
  uint32_t root = 0;
  uint32_t n_nodes = 0;
  uint32_t depth = 0;         // the longest root-to-leaf path, in splits
  int32_t output = 0;         // global output column, or -1 for vector leaves
  uint32_t first_output = 0;  // the head's first output column
  uint32_t width = 1;         // leaf values per leaf
  bool special = false;       // has categorical splits
  uint32_t top = 0;           // levels stored complete (Split), see above
  uint64_t complete_base = 0; // their 2^top - 1 nodes start here in complete_nodes()
  uint64_t leaf_base = 0;     // the 2^top nodes below them start here in complete_bottom()
  // The tree ends at its complete top with one value per leaf: the value of
  // bottom position p is complete_values()[leaf_base + p], one load instead
  // of two dependent ones.
  bool values_at_bottom = false;
  bool f32 = false;           // accumulate in float
  uint64_t value_base = 0;    // leaf values of node i: values[value_base + (i - root) * width ...]
};

struct CatRange {
  uint32_t begin, words;
  bool int_cast;  // LightGBM's (int)x: x in (-1, 0) is category 0, not negative
};

class Forest {
 public:
  static Forest build(const ForestInput& in);

  uint32_t n_features() const { return n_features_; }
  uint32_t n_copies() const { return n_copies_; }  // encoded copies of each row (2 or 4)
  uint32_t n_outputs() const { return n_outputs_; }
  size_t n_trees() const { return trees_.size(); }
  size_t n_nodes() const { return node_left_.size(); }
  size_t n_leaves() const { return n_leaves_; }
  uint32_t max_depth() const { return max_depth_; }
  const std::vector<HeadSpec>& heads() const { return heads_; }

  // out: n x n_outputs float32. Rows are row-major with `stride` floats each
  // (at least n_features). raw=false applies each head's transform.
  // `kernels` (tests) picks a level; by default the process's active one.
  // [tree_begin, tree_end): only these trees (global order, head after head)
  // add to the base scores, e.g. a boosted head's first trees as a cheap
  // first-phase model; by default all.
  void predict(const float* X, size_t n, size_t stride, bool raw, int threads, float* out,
               const EvalKernels* kernels = nullptr, size_t tree_begin = 0, size_t tree_end = SIZE_MAX) const;
  // predict() in steps, for a caller that continues earlier sums (a first
  // phase's trees, then the rest): acc (n x n_outputs) starts at the base
  // scores; accumulate() adds trees [tree_begin, tree_end) in order, each
  // row's sum on its own (the same doubles whatever the batch); finish()
  // writes predict()'s outputs.
  void init_sums(size_t n, double* acc) const;
  void accumulate(const float* X, size_t n, size_t stride, double* acc, size_t tree_begin, size_t tree_end) const;
  void finish(const double* acc, size_t n, bool raw, float* out) const { finish_rows(acc, n, raw, out); }
  // The same from one float32 column per feature (nullptr: all missing),
  // transposed into row blocks on the way.
  void predict_columns(const float* const* columns, size_t n, bool raw, int threads,
                       float* out) const;

  // Evaluation internals, read by the kernels.
  const Split* node_splits() const { return node_splits_.data(); }
  const uint32_t* node_left() const { return node_left_.data(); }  // global index; right = left + 1
  const uint32_t* node_cat() const { return node_cat_.data(); }    // 1 + index into cats(), or 0
  const CatRange* cats() const { return cats_.data(); }
  const uint32_t* cat_words() const { return cat_words_.data(); }
  const TreeInfo* trees() const { return trees_.data(); }
  const Split* complete_nodes() const { return complete_nodes_.data(); }
  const uint32_t* complete_bottom() const { return complete_bottom_.data(); }
  const double* complete_values() const { return complete_values_.data(); }
  const double* values() const { return values_.data(); }
  const BinnedForest& binned() const { return binned_; }  // usable = false: general walk only

 private:
  void add_complete(TreeInfo& t, uint32_t cap);
  template <class Fill>  // fill(first_row, rows, acc) accumulates one chunk
  void run_chunks(size_t n, bool raw, int threads, float* out, Fill fill) const;
  void finish_rows(const double* acc, size_t n, bool raw, float* out) const;

  uint32_t n_features_ = 0, n_outputs_ = 0, max_depth_ = 0, n_copies_ = 2;
  size_t n_leaves_ = 0;
  std::vector<HeadSpec> heads_;
  std::vector<uint32_t> head_first_output_;  // per head, its first global output column
  std::vector<Split> node_splits_;
  std::vector<uint32_t> node_left_, node_cat_;
  std::vector<CatRange> cats_;
  std::vector<uint32_t> cat_words_;
  std::vector<TreeInfo> trees_;
  std::vector<Split> complete_nodes_;
  std::vector<uint32_t> complete_bottom_;
  std::vector<double> complete_values_;  // parallel to complete_bottom_
  std::vector<double> values_;
  std::vector<double> base_;  // per global output
  BinnedForest binned_;
};

}  // namespace engine::trees
