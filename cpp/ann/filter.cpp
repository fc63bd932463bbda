#include "ann/filter.hpp"

#include <algorithm>
#include <cmath>

namespace engine::ann {
namespace {

// Relative costs per row, measured at 1M x 64 on AVX-512 (both paths are
// bound by memory): an f32 dot product in an exact scan of contiguous rows
// is the unit; checking a row walked in an IVF list (reading its attribute
// in list order, testing it, compacting the survivors) costs about two.
constexpr double kCheckCost = 2.0;
constexpr double kCentroidCost = 0.25;  // int8 centroid codes
// Matching rows a filtered walk sees, per requested result, before stopping.
constexpr size_t kMatchesPerResult = 8;
double code_cost(Storage s) { return s == Storage::f32 ? 1.0 : 0.8; }
// An exact scan's row from the row-order i8 codes (scan_codes): measured
// 0.26 for a merchant's contiguous rows and 0.6 for a category's scattered
// ones (an f32 scan of those is 3.3: four cache lines a row, not one).
constexpr double kRowCodesCost = 0.3;
// Fewer rows than this beyond the re-scored ones: an exact scan reads f32 only.
constexpr size_t kCodesScanMin = 2048;
// Above this share of matching rows, checking only the rows that would enter
// the top k costs less than checking every row and gathering the survivors.
// Not lower: a late check only estimates the matches it has seen (rows times
// selectivity), and for a filter concentrated away from the query, such as a
// category (tests/test_vector_index_filters.py), that stops the walk too soon.
constexpr double kLateCheckSelectivity = 0.3;
// Largest value range held as bytes as well as bits (a quarter of L1 cache).
constexpr uint64_t kMaxFlagSpan = 8192;

}  // namespace

void Condition::prepare() {
  bits.clear();
  flags.clear();
  if (values.size() > 8) {
    const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
    const uint64_t span = uint64_t(*mx) - uint64_t(*mn);
    if (span < (uint64_t{1} << 24)) {  // at most a 2 MiB bitmap
      lo = *mn;
      hi = *mx;
      bits.assign(span / 64 + 1, 0);
      for (int64_t v : values) {
        const uint64_t o = uint64_t(v) - uint64_t(lo);
        bits[o >> 6] |= uint64_t{1} << (o & 63);
      }
      if (span < kMaxFlagSpan) {
        flags.assign(span + 2, 0);
        for (int64_t v : values) flags[uint64_t(v) - uint64_t(lo)] = 1;
      }
      return;
    }
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
}

Plan make_plan(const SegmentView& view, const FilterSpec& filter, size_t k, uint32_t nprobe,
               bool exact) {
  const Segment& seg = *view.segment;
  const SegmentArrays& a = seg.arrays();
  const size_t n = seg.rows();
  Plan plan;
  plan.dead = view.dead ? view.dead->data() : nullptr;
  if (view.live == 0) { plan.nothing = true; return plan; }

  // Driving set for an exact scan: the smallest of the condition postings
  // and the allow-list. Selectivity assumes the conditions are independent.
  double selectivity = std::max(double(view.live) / double(n), 1e-9);
  size_t driving = n;
  int driving_condition = -1;  // -2: the allow-list drives
  for (size_t i = 0; i < filter.conditions.size(); ++i) {
    const size_t count = seg.matching_rows(filter.conditions[i]);
    if (count == 0) { plan.nothing = true; return plan; }
    selectivity *= double(count) / double(n);
    if (count < driving) { driving = count; driving_condition = int(i); }
  }
  std::vector<uint32_t> allow_rows;
  if (filter.has_allow) {
    for (uint64_t id : filter.allow_ids) {
      const int64_t r = seg.find(id);
      if (r >= 0) allow_rows.push_back(uint32_t(r));
    }
    if (allow_rows.empty()) { plan.nothing = true; return plan; }
    std::sort(allow_rows.begin(), allow_rows.end());
    selectivity *= double(allow_rows.size()) / double(n);
    if (allow_rows.size() <= driving) { driving = allow_rows.size(); driving_condition = -2; }
  }

  const size_t n_checks = filter.conditions.size() + (filter.has_allow ? 1 : 0) + (plan.dead ? 1 : 0);
  // f16 / i8 nominate candidates that f32 re-scores: with per-dimension
  // i8 scales, k + 16 keep recall@10 unchanged at 1M rows, and k + k/4 a
  // ranking request's k = 64-400 (its pipeline benchmark's world, 1M items:
  // recall@k the same as with 2k, 0.969-0.999, and 7-15 % less time for
  // the home feed's k = 400; the candidates kept and sorted were most of it).
  const size_t rerank = a.storage == Storage::f32 ? 0 : k + std::max<size_t>(16, k / 4);
  // An exact plan over many rows nominates from the row-order codes too
  // (scan_codes); one asked to be exact, or over few rows, scores f32 only.
  const bool codes_scan = !exact && !seg.row_codes().empty() && driving >= kCodesScanMin + rerank;
  if (seg.has_ivf() && !exact) {
    plan.nprobe = std::min<uint32_t>(a.nlist, nprobe ? nprobe : a.default_nprobe);
    plan.selectivity = selectivity;
    plan.check_late = selectivity >= kLateCheckSelectivity;
    // The k best matching rows rank about k / selectivity among all rows, so
    // a filtered walk must cover more of the neighbourhood than an unfiltered
    // one. It goes on until it has seen C * sqrt(selectivity) matching rows
    // (and at least kMatchesPerResult * k), C being the rows an unfiltered
    // search scans. That lies between "the same lists" (C * selectivity
    // matches: enough for a filter independent of place, measured 0.82
    // recall for a 1 % store page at 1M items and too few for filters
    // correlated with place, like a category) and "as many matches as an
    // unfiltered search sees" (C / selectivity rows: needlessly many for
    // common filters). Measured in tests/test_vector_index_filters.py.
    const double per_list = double(n) / double(a.nlist);
    const double unfiltered = double(plan.nprobe) * per_list;
    plan.target_matches = std::max<size_t>(kMatchesPerResult * k,
                                           size_t(unfiltered * std::sqrt(selectivity)));
    const double scanned = std::min(double(n), std::max(unfiltered,
                                                        double(plan.target_matches) / selectivity));
    plan.expected_lists = uint32_t(std::min(double(a.nlist), std::ceil(scanned / per_list)));
    const double exact_cost = double(driving) * ((codes_scan ? kRowCodesCost : 1.0) + kCheckCost * double(n_checks));
    const double scored = plan.check_late || n_checks == 0 ? scanned : scanned * selectivity;
    const double checked = plan.check_late ? 0.0 : scanned * kCheckCost * double(n_checks);
    const double ivf_cost = double(a.nlist) * kCentroidCost + checked + scored * code_cost(a.storage);
    plan.exact = exact_cost <= ivf_cost;
  }


  if (!plan.exact) {
    plan.dead = view.dead_pos ? view.dead_pos->data() : nullptr;
    for (const auto& c : filter.conditions) plan.checks.push_back(&c);
    if (filter.has_allow) {
      plan.allow_bits.assign((n + 63) / 64, 0);
      for (uint32_t r : allow_rows) {
        const uint32_t p = seg.position_of(r);
        plan.allow_bits[p >> 6] |= uint64_t{1} << (p & 63);
      }
    }
    plan.rerank = rerank;
    return plan;
  }

  // Exact scan: rows of the driving set, then the remaining checks per row.
  if (codes_scan) plan.rerank = rerank;
  if (driving_condition == -1) {
    plan.all_rows = true;
  } else if (driving_condition == -2) {
    plan.rows = std::move(allow_rows);
  } else {
    const Condition& c = filter.conditions[size_t(driving_condition)];
    const bool contiguous = int32_t(c.column) == a.cluster_column;
    for (auto [b, e] : seg.postings(c)) {
      if (contiguous) {
        const uint32_t r0 = a.post_rows[b];
        plan.ranges.emplace_back(r0, r0 + uint32_t(e - b));
      } else {
        plan.rows.insert(plan.rows.end(), a.post_rows.begin() + b, a.post_rows.begin() + e);
      }
    }
    // Each value's postings are ascending rows: one value needs no sort.
    if (contiguous)
      std::sort(plan.ranges.begin(), plan.ranges.end());
    else if (!std::is_sorted(plan.rows.begin(), plan.rows.end()))
      std::sort(plan.rows.begin(), plan.rows.end());
  }
  for (size_t i = 0; i < filter.conditions.size(); ++i)
    if (int(i) != driving_condition) plan.checks.push_back(&filter.conditions[i]);
  if (filter.has_allow && driving_condition != -2) {
    plan.allow_bits.assign((n + 63) / 64, 0);
    for (uint32_t r : allow_rows) plan.allow_bits[r >> 6] |= uint64_t{1} << (r & 63);
  }
  return plan;
}

}  // namespace engine::ann
