// An immutable slice of the catalogue: its rows (sorted by the cluster
// attribute so a store page scans contiguous memory), attribute postings, an
// id lookup, and optionally an IVF partition with compact codes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ann/types.hpp"
#include "common/array.hpp"
#include "common/huge_pages.hpp"

namespace engine::ann {

// Everything a segment is made of; exactly what save() writes and load()
// reads back. from_arrays() validates every invariant the search relies on.
struct SegmentArrays {
  uint32_t dim = 0;
  Metric metric = Metric::ip;
  Storage storage = Storage::f32;
  uint32_t n_columns = 0;
  int32_t cluster_column = -1;  // rows of one value of this column are contiguous
  uint32_t default_nprobe = 0;  // calibrated at build (see segment_build.cpp)

  Array<uint64_t> ids;          // [n]
  Array<float> vectors;         // [n * dim] f32 originals, row order
  Array<float> sqnorms;         // [n]
  Array<int64_t> attrs;         // [n_columns * n], column-major, row order
  // Postings, column c: distinct values post_values[post_col[c] .. post_col[c+1]),
  // value g has rows post_rows[c*n + post_offsets[g + c] .. c*n + post_offsets[g + c + 1]).
  Array<uint64_t> post_col;     // [n_columns + 1]
  Array<int64_t> post_values;   // [total distinct]
  Array<uint64_t> post_offsets; // [total distinct + n_columns]
  Array<uint32_t> post_rows;    // [n_columns * n]
  Array<uint64_t> sorted_ids;   // [n] ascending
  Array<uint32_t> sorted_rows;  // [n] row of sorted_ids[i]

  // IVF partition (nlist == 0: this segment is scanned exactly).
  uint32_t nlist = 0;
  Array<float> centroids;       // [nlist * dim]
  Array<float> centroid_sqnorms;// [nlist]
  Array<uint64_t> list_offsets; // [nlist + 1]
  Array<uint32_t> list_rows;    // [n] list position -> row
  Array<uint8_t> codes;         // [n * dim * storage_bytes], list order
  Array<float> code_scales;     // [dim] (i8 only): x[d] ~ code[d] * code_scales[d]
  Array<int64_t> list_attrs;    // [n_columns * n], column-major, list order

  size_t rows() const { return ids.size(); }
};

struct Condition;

class Segment {
 public:
  // Takes ownership of validated arrays; throws FormatError naming the array
  // that breaks an invariant.
  static std::shared_ptr<const Segment> from_arrays(SegmentArrays arrays);

  const SegmentArrays& arrays() const { return a_; }
  size_t rows() const { return a_.rows(); }
  bool has_ivf() const { return a_.nlist > 0; }

  // Row of `id`, or -1.
  int64_t find(uint64_t id) const;
  // [begin, end) in post_rows of each value of the condition present in its
  // column, in value order. One forward pass over the column's values (with
  // a bitmap condition, over those in its range): thousands of store ids
  // cost a merge, not thousands of searches.
  std::vector<std::pair<size_t, size_t>> postings(const Condition& condition) const;
  // The number of rows postings() covers, without listing them.
  size_t matching_rows(const Condition& condition) const;
  // List position -> list id, derived once (used when a merge keeps lists).
  std::vector<uint32_t> row_lists() const;
  // The centroids as int8 codes with one scale each, interleaved for
  // dot_i8_blocked (simd/i8_blocks.hpp): a quarter of the f32 bytes, so
  // ranking thousands of lists per query stays in L2 cache.
  const std::vector<int8_t>& centroid_blocks() const { return centroid_blocks_; }
  const std::vector<float>& centroid_code_scales() const { return centroid_code_scales_; }
  // Row -> its position in list order (IVF segments only): lets removals and
  // allow-lists be expressed in list order, where the IVF walk reads.
  uint32_t position_of(uint32_t row) const { return row_to_pos_[row]; }
  // list_attrs as int32 when every value fits (ids usually do): the filtered
  // walk reads half the bytes. Empty otherwise.
  const std::vector<int32_t>& list_attrs32() const { return list_attrs32_; }
  // Per column, in list order: one bit a row when every value is 0 or 1
  // (in_stock), else empty. A home feed's late in-stock check reads 1M rows'
  // flags from 128 KB instead of a 4 MB int32 column.
  const std::vector<uint64_t>& list_bits(uint32_t column) const { return list_bits_[column]; }
  // The compact codes (f16 / i8 storage) again, in row order: an exact scan
  // of many rows nominates its candidates from them, reading a quarter (i8)
  // of the f32 bytes, and re-scores only the best in f32. Empty otherwise.
  const std::vector<uint8_t, HugePageAllocator<uint8_t>>& row_codes() const { return row_codes_; }
  // i8 IVF segments: the list-order codes interleaved for dot_i8_blocked
  // (simd/i8_blocks.hpp), 16 list positions a block whatever the lists'
  // bounds. A walk then scores a list's rows without horizontal sums, in a
  // third of the instructions of row by row (the walk's largest cost), with
  // the same integer dot products. Empty otherwise.
  const std::vector<int8_t, HugePageAllocator<int8_t>>& list_blocks() const { return list_blocks_; }
  // i8 IVF segments: the row-order codes again at 4 bits a dimension, in the
  // interleaved layout of simd/u4_blocks.hpp: code i8 ~ nibble_lows()[d] +
  // nibble_steps()[d] * nibble. Half the bytes of row_codes(): a long exact
  // scan of contiguous rows (a large merchant's store page, bound by memory
  // bandwidth) nominates from them what the i8 codes then re-score.
  const std::vector<uint8_t, HugePageAllocator<uint8_t>>& row_nibbles() const { return row_nibbles_; }
  const std::vector<float>& nibble_lows() const { return nibble_lows_; }
  const std::vector<float>& nibble_steps() const { return nibble_steps_; }

 private:
  explicit Segment(SegmentArrays arrays);
  void build_row_nibbles();
  SegmentArrays a_;
  std::vector<int8_t> centroid_blocks_;
  std::vector<float> centroid_code_scales_;
  std::vector<uint32_t> row_to_pos_;
  std::vector<int32_t> list_attrs32_;
  std::vector<std::vector<uint64_t>> list_bits_;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> row_codes_;
  std::vector<int8_t, HugePageAllocator<int8_t>> list_blocks_;
  std::vector<uint8_t, HugePageAllocator<uint8_t>> row_nibbles_;
  std::vector<float> nibble_lows_, nibble_steps_;
  std::vector<std::vector<uint32_t>> value_rows_;  // per column: rows of value_min_ + i, or empty
  std::vector<int64_t> value_min_;
};

}  // namespace engine::ann
