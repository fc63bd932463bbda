#include "ann/filter.hpp"

#include <algorithm>
#include <cmath>

namespace engine::ann {
namespace {

// Relative costs per row, measured on AVX-512 with 64 dimensions: an f32 dot
// product is the unit; a filter check is a load and a compare or two.
constexpr double kCheckCost = 0.25;
double code_cost(Storage s) { return s == Storage::f32 ? 1.0 : 0.8; }

}  // namespace

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
  double selectivity = double(view.live) / double(n);
  size_t driving = n;
  int driving_condition = -1;  // -2: the allow-list drives
  std::vector<size_t> counts;
  for (size_t i = 0; i < filter.conditions.size(); ++i) {
    const Condition& c = filter.conditions[i];
    size_t count = 0;
    for (int64_t v : c.values) {
      auto [b, e] = seg.posting(c.column, v);
      count += e - b;
    }
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
  if (seg.has_ivf() && !exact) {
    plan.nprobe = std::min<uint32_t>(a.nlist, nprobe ? nprobe : a.default_nprobe);
    const double scanned = double(plan.nprobe) * double(n) / double(a.nlist);
    const double exact_cost = double(driving) * (1.0 + kCheckCost * double(n_checks));
    const double walk_rows = std::min(double(n), scanned / std::max(selectivity, 1e-12));
    const double ivf_cost = double(a.nlist) + walk_rows * kCheckCost * double(n_checks) +
                            std::min(double(n), scanned) * code_cost(a.storage);
    plan.exact = exact_cost <= ivf_cost;
    plan.target_matches = size_t(scanned);
  }

  if (!plan.exact) {
    for (const auto& c : filter.conditions) plan.checks.push_back(&c);
    if (filter.has_allow) {
      plan.allow_bits.assign((n + 63) / 64, 0);
      for (uint32_t r : allow_rows) plan.allow_bits[r >> 6] |= uint64_t{1} << (r & 63);
    }
    if (a.storage != Storage::f32) plan.rerank = std::max<size_t>(4 * k, k + 32);
    return plan;
  }

  // Exact scan: rows of the driving set, then the remaining checks per row.
  if (driving_condition == -1) {
    plan.all_rows = true;
  } else if (driving_condition == -2) {
    plan.rows = std::move(allow_rows);
  } else {
    const Condition& c = filter.conditions[size_t(driving_condition)];
    const bool contiguous = int32_t(c.column) == a.cluster_column;
    for (int64_t v : c.values) {
      auto [b, e] = seg.posting(c.column, v);
      if (b == e) continue;
      if (contiguous) {
        const uint32_t r0 = a.post_rows[b];
        plan.ranges.emplace_back(r0, r0 + uint32_t(e - b));
      } else {
        plan.rows.insert(plan.rows.end(), a.post_rows.begin() + b, a.post_rows.begin() + e);
      }
    }
    if (contiguous)
      std::sort(plan.ranges.begin(), plan.ranges.end());
    else
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
