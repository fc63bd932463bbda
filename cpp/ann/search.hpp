// Scoring one query against one segment under a Plan.
#pragma once
#include <vector>

#include "ann/filter.hpp"
#include "ann/topk.hpp"

namespace engine::ann {

// One list of a filtered walk, checked ahead of its scoring (walk_checked).
struct StagedList {
  size_t p0 = 0, rows = 0;     // the list's first position and length
  size_t count = 0;             // positions that pass: picks[0, count), relative to p0
  std::vector<uint32_t> picks;
  std::vector<uint8_t> pass;    // pass flag per position
  bool whole = false;           // score the whole list, masked (most rows pass)
};

// Per-thread buffers, reused across queries and segments. Segments that share
// centroids (all segments added after the first IVF build) share one ranking
// of the lists per query.
struct Scratch {
  std::vector<float> scores;
  std::vector<float> batch_scores;  // queries x rows of one block (batched exact scans)
  std::vector<uint64_t> batch_pairs;  // (list, query) of a batched IVF walk
  std::vector<TopK> batch_approx;     // per query of a batched IVF walk
  std::vector<int32_t> int_scores;
  std::vector<int32_t> block_scores;  // whole blocks of interleaved list codes
  std::vector<int8_t> q8;  // the query quantised for the centroid codes (padded)
  float q8_scale = 0;
  const float* q8_for = nullptr;
  std::vector<float> qc_tmp;  // the query scaled per dimension for i8 list codes
  std::vector<int8_t> qc;
  float qc_scale = 0;
  const float* qc_for = nullptr;    // the scales it was made for
  const float* qc_query = nullptr;  // and the query
  StagedList staged[2];
  std::vector<uint32_t> rows;
  const float* ranked_for = nullptr;  // centroids the ranking below belongs to
  std::vector<int32_t> list_int_scores;
  std::vector<uint32_t> list_picks;
  std::vector<float> list_approx;  // int8 estimate of every list's score
  std::vector<float> list_maxima;   // of blocks of list_approx (list_at)
  std::vector<std::pair<float, uint32_t>> list_candidates;
  std::vector<float> list_scores;
  std::vector<uint64_t> list_keys;  // (score, list) keys, see list_at()
  size_t ranked = 0;                // list_keys[0, ranked) is sorted best first
  std::vector<uint8_t> list_taken;
  TopK approx{1};                   // candidates from compact codes, before re-ranking
  std::vector<int8_t> u4w;          // the query as weights of 4-bit row codes (scan_nibbles)
  std::vector<float> sample;        // 4-bit scores of a sample of the rows a scan covers
  std::vector<uint32_t> keys;       // kth_largest's scratch
  TopK nibble_approx{1};            // nominees of a 4-bit scan, re-scored in i8
  std::vector<uint32_t> nominees;
  std::vector<uint32_t> picks;      // positions above a bound (above_i32)
  std::vector<uint32_t> rerank_rows;
};

// q is the query as searched (unit length for cos). Adds the segment's best
// rows to `top` with exact scores (2<q,x> - |x|^2 for l2).
void search_segment(const float* q, const SegmentView& view, const Plan& plan, uint32_t segment_index,
                    TopK& top, Scratch& scratch);

// The same for nq queries (row-major, nq * dim), tops[i] collecting query i.
// Exact scans score each block of rows against the whole batch.
void search_segment_batch(const float* queries, size_t nq, const SegmentView& view, const Plan& plan,
                          uint32_t segment_index, TopK* tops, Scratch& scratch);

// Call before each new query so list rankings are not reused across queries.
inline void new_query(Scratch& s) {
  s.ranked_for = nullptr;
  s.q8_for = nullptr;
  s.qc_query = nullptr;
}

}  // namespace engine::ann
