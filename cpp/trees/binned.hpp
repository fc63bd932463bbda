// The forest re-expressed over small integers, for the AVX-512 VBMI kernel
// (binned_avx512.cpp): every split becomes "bin > rank" on a byte per row,
// and every tree a handful of 64-byte tables that live in registers.
//
// A row's bin for a feature is the number of the feature's distinct split
// thresholds at or below its value, so `x >= threshold_j` iff `bin > j`,
// exactly; a missing value's bin is 255, above every rank. Splits that send
// missing values left mask that out when a row is walked alone (one mask
// per tree, BinnedTreeInfo::missing_left); a block of rows
// holds a second copy of each column with missing as 0, which they compare
// instead (BinnedTree::block_column). A bin column is a feature, or a feature
// under LightGBM's zero-as-missing (zero is missing too), and ranks up to
// 254 of its thresholds: LightGBM and XGBoost histogram models have at most
// 255 bins per feature (their default max_bin), so one column usually
// holds them all; more (heads trained on different rows, exact splits)
// take a column per run of 254.
//
// A tree with at most 64 leaves then needs, per row, 64 bits of split
// outcomes. A full block of 64 rows compares each split once for all its
// rows (a 64-bit row mask per split) and finds each node's rows from its
// parent's (AliveStep); fewer rows gather one row's outcomes into a word
// and walk 8 rows per instruction. Trees of 7 or 8 levels add three words for their bottom
// two (BinnedBottom), in blocks of 64 rows. Forests this cannot
// express (categorical splits, vector leaves, trees with more than 64
// leaves and more than 8 levels, over 32,000 bin columns) keep the general
// walk (walk.hpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::trees {

class Forest;

constexpr uint32_t kBinnedLeaf = 64;  // node ids: splits 0..63, leaves 64 + j
constexpr uint8_t kMissingBin = 255;

// Leaf values; floats for trees that sum in float (XGBoost's), which the
// walks then add without conversions.
template <size_t N>
union LeafValues {
  double f64[N];
  float f32[N];
};

// One tree's tables, 64-byte aligned so each is one register load.
struct alignas(64) BinnedTree {
  uint8_t column[64];        // the split's bin column, low 7 bits (chunk_masks say the rest)
  uint8_t rank[64];          // go right iff bin > rank
  uint8_t left[128];         // next node per node id; leaves point to themselves
  uint8_t right[128];
  LeafValues<64> values;     // leaf j's value
  // The split's column in a column-major block (kBlockRows bins per
  // column): its bin column, or for a split that sends missing values left
  // that column's copy with missing as bin 0 (row_bytes further), so that
  // every split of a block is one byte compare.
  uint16_t block_column[64];
  // left and right side by side, [2 * node + went right]: a scalar walk's
  // step is then one load, not two loads and a select.
  uint8_t child[256];
};

// Trees with more than 64 leaves and at most 8 levels (XGBoost's depth 7
// and 8) keep the table form for their top 6 levels, whose exits (the
// nodes at depth 6, and leaves above it) walk two more levels here: exit
// j's split is slot j of group 0, its child on side b1 slot 2j + b1 of
// groups 1-2, and the leaf reached is values[4j + 2 b1 + b2]; paths that
// end sooner go left on the slots they lack. Only full blocks of rows take
// this form (binned_avx512.cpp); fewer rows of such a forest take the
// general walk, which is faster on them.
constexpr uint32_t kTopDepth = 6;
struct BottomSlot {
  uint16_t block_column;  // as BinnedTree's
  uint8_t rank;
  uint8_t slot;
};
struct alignas(64) BinnedBottom {
  // Per group, the slots holding a split; the rest always go left.
  BottomSlot slots[3][64];
  uint8_t n_slots[3];
  LeafValues<256> values;
};

// Small batches of forests no deeper than 8 levels walk a row through
// trees stored complete to the forest's depth D, in bins (the scalar twin
// of Forest's complete tops): node i's children are 2i + 1 and 2i + 2, and
// a node is one word,
//   bin column | lo << 16 | span << 24,   right iff uint32(bin - lo) < span,
// with lo = rank + 1 and span = 256 - lo, or 255 - lo when missing values go
// left (bin 255 then fails); padding splits have span 0 and always go left.
// Tree t's node i is nodes[(t << D) + i], its leaf at bottom position p
// values[(t << D) + p]. A depth-8 forest of 500 trees takes 1 MB so (0.5 MB
// with float leaves), against 2.1 MB for the general walk's nodes, bottoms
// and values: one row's walk then finds most of its nodes in L2.
constexpr uint32_t kCompleteMaxDepth = 8;
struct BinnedComplete {
  uint32_t depth = 0;  // D; 0: the forest is deeper, or not binned
  std::vector<uint32_t> nodes;
  std::vector<float> values_f32;   // when every tree sums in float
  std::vector<double> values_f64;  // otherwise
};

// A tree's leaf values as byte planes for the full-block walk: plane[k][j]
// is byte k of leaf j's value (a float value's 4 bytes, then zeros), so that
// one byte permute per plane looks up 64 rows' leaves.
struct alignas(64) LeafPlanes {
  uint8_t plane[8][64];
};

struct BinnedTreeInfo {
  uint32_t chunk_mask_at = 0;  // first of the tree's n_chunks - 1 masks in chunk_masks
  uint8_t root = 0;            // 0, or kBinnedLeaf for a tree that is one leaf
  uint8_t depth = 0;           // longest path in the tables, in splits (at most kTopDepth with a bottom)
  uint8_t n_splits = 0;
  uint64_t missing_left = 0;   // bit per split that sends missing values left
  bool f32 = false;
  uint32_t output = 0;
  int32_t bottom = -1;  // index into BinnedForest::bottoms, or -1
  uint32_t steps_at = 0;  // first of the tree's n_splits AliveSteps (trees without a bottom)
};

// A split as the row-set walk (binned_alive_avx512.hpp) reads it: a node's
// rows are its parent's rows that go its way, one AND per split and block;
// split ids run breadth first, so parents come first.
struct AliveStep {
  uint16_t pair;  // the split's index in split_pairs (when that is not empty)
  uint8_t left;   // its children's node ids (leaves: kBinnedLeaf + j)
  uint8_t right;
};

// A feature some split reads: its thresholds' keys, ascending, padded with
// UINT32_MAX to 256, as 32 runs of 8 after the 32 pivots (the last key of
// each run), so that a bin is which run (one 32-wide compare for a row) and
// where in it. column: its bin column with NaN missing, and with zero or NaN
// missing; the spare column past the others where no split reads it.
struct alignas(64) KeyBlock {
  uint32_t key[16];
};
constexpr uint32_t kKeyRun = 8;
struct BinFeature {
  uint32_t feature;
  // Pivots at key_blocks[blocks_at .. +2), the keys in order at
  // blocks_at + 2 .. +18 (run i at key i * kKeyRun), and the k-th key of
  // every run at blocks_at + 18 + 2k .. +2 (bin_block's permutes).
  uint32_t blocks_at;
  uint32_t column[2];
  uint32_t n_keys;  // real keys (the rest is padding): at most kKeyRun are counted one by one
};

struct BinnedForest {
  bool usable = false;
  uint32_t n_columns = 0;
  uint32_t n_chunks = 0;       // bin columns and the spare in chunks of 128 (one two-table byte permute each)
  uint32_t row_bytes = 0;      // n_chunks * 128: one row's bins
  std::vector<BinFeature> features;
  std::vector<KeyBlock> key_blocks;
  std::vector<BinnedTree> trees;     // parallel to Forest::trees()
  std::vector<BinnedTreeInfo> info;
  std::vector<BinnedBottom> bottoms;
  std::vector<uint64_t> chunk_masks; // per tree, for chunks 1..n_chunks-1: splits reading that chunk
  BinnedComplete complete;
  std::vector<uint8_t> output_f32;   // per output: its trees sum in float
  // The distinct splits of trees without a bottom, block_column << 8 | rank,
  // when there are at most half as many as splits: a block's compares are
  // then made once per distinct split, not once per tree that holds it.
  std::vector<uint32_t> split_pairs;
  std::vector<AliveStep> alive_steps;  // per tree without a bottom, at BinnedTreeInfo::steps_at
  std::vector<LeafPlanes> leaf_planes;  // parallel to trees (zeros for trees with a bottom)
};

// Empty (usable = false) when the forest has anything the binned form cannot
// express exactly.
BinnedForest bin_forest(const Forest& f);

}  // namespace engine::trees
