// What a caller restricts a search to, and how one segment will honour it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "ann/segment.hpp"

namespace engine::ann {

// attribute column `column` takes one of `values`.
struct Condition {
  uint32_t column = 0;
  // Sorted and distinct after prepare(), except when `bits` holds the set.
  std::vector<int64_t> values;
  // Large sets over a compact range (thousands of merchant ids) are held as
  // a bitmap over [lo, hi] instead: O(1) membership and no sort per request.
  int64_t lo = 0, hi = 0;
  std::vector<uint64_t> bits;
  // The same set as one byte per value of [lo, hi] plus a zero byte past the
  // end, when that stays small: the filtered walk tests every row it visits,
  // and a byte load is half the work of a bit test.
  std::vector<uint8_t> flags;

  void prepare();  // call once values holds the requested values
  bool contains(int64_t v) const {
    if (!bits.empty()) {
      const uint64_t o = uint64_t(v) - uint64_t(lo);  // wraps for v < lo
      return o < 64 * bits.size() && ((bits[o >> 6] >> (o & 63)) & 1u);
    }
    if (values.size() <= 8) return std::find(values.begin(), values.end(), v) != values.end();
    return std::binary_search(values.begin(), values.end(), v);
  }
};

// All conditions AND the allow-list (when has_allow).
struct FilterSpec {
  std::vector<Condition> conditions;
  bool has_allow = false;
  std::vector<uint64_t> allow_ids;  // sorted, distinct
  bool empty() const { return conditions.empty() && !has_allow; }
};

// A segment as one snapshot sees it: the immutable rows plus its tombstones.
struct SegmentView {
  std::shared_ptr<const Segment> segment;
  std::shared_ptr<const std::vector<uint64_t>> dead;  // bit per row; null when none
  // The same bits in list order (IVF segments), for the list walk.
  std::shared_ptr<const std::vector<uint64_t>> dead_pos;
  size_t live = 0;
};

inline bool test_bit(const uint64_t* bits, size_t i) { return (bits[i >> 6] >> (i & 63)) & 1u; }

// The per-segment strategy for one search call, chosen from the filter's
// selectivity by a cost model: scan the matching rows exactly, or walk the
// IVF lists nearest the query, checking the filter as it goes.
struct Plan {
  bool nothing = false;  // no row can match
  bool exact = true;
  // Rows an exact scan visits: all rows, contiguous ranges, or listed rows.
  bool all_rows = false;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  std::vector<uint32_t> rows;
  // Conditions still to check per row (in the IVF walk: all of them).
  std::vector<const Condition*> checks;
  std::vector<uint64_t> allow_bits;  // allow-list as a bitset: by row (exact), by position (walk)
  const uint64_t* dead = nullptr;    // by row (exact) or by list position (walk)
  uint32_t nprobe = 0;          // lists to probe at least
  uint32_t expected_lists = 0;  // lists the walk is expected to visit (>= nprobe)
  size_t target_matches = 0;    // matching rows to see before stopping (filtered walk)
  size_t rerank = 0;            // approximate candidates re-scored in f32 (0: none; exact plans: from row-order codes)
  double selectivity = 1.0;     // estimated share of live rows that match
  // Most rows match: score every row and check the filter only for rows that
  // beat the current k-th best, instead of checking every row first.
  bool check_late = false;
};

Plan make_plan(const SegmentView& view, const FilterSpec& filter, size_t k, uint32_t nprobe,
               bool exact);

}  // namespace engine::ann
