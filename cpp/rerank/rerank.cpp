// See rerank.hpp for the rules and what the probabilities mean.
#include "rerank/rerank.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <numeric>
#include <string>

#include "common/errors.hpp"

namespace engine::rerank {

namespace {

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t state;
  double uniform() {  // [0, 1)
    state += 0x9E3779B97F4A7C15ull;
    return double(mix64(state) >> 11) * 0x1.0p-53;
  }
};

// int64 labels -> 0..n-1 in first-seen order, by open addressing. A request
// has a few hundred candidates, so this beats a node-based map by far.
std::vector<uint32_t> dense_ids(const int64_t* labels, const std::vector<int32_t>& rows, uint32_t* n_ids) {
  size_t cap = 16;
  while (cap < rows.size() * 2) cap <<= 1;
  std::vector<int64_t> keys(cap);
  std::vector<uint32_t> ids(cap, UINT32_MAX);
  std::vector<uint32_t> out(rows.size());
  uint32_t next = 0;
  for (size_t j = 0; j < rows.size(); ++j) {
    const int64_t label = labels[rows[j]];
    size_t slot = mix64(uint64_t(label)) & (cap - 1);
    while (ids[slot] != UINT32_MAX && keys[slot] != label) slot = (slot + 1) & (cap - 1);
    if (ids[slot] == UINT32_MAX) {
      keys[slot] = label;
      ids[slot] = next++;
    }
    out[j] = ids[slot];
  }
  *n_ids = next;
  return out;
}

// Candidate indices by value, best first (ties: lower index first), with
// later duplicates of a key dropped: the kept copy is the best-valued one.
// Only the first `needed` are ordered when there are no keys: a request
// shows 20 of ~500 candidates, and selecting them before sorting skips most
// of a full sort's unpredictable comparisons.
std::vector<int32_t> unique_by_value(const Candidates& c, size_t needed) {
  std::vector<int32_t> order(c.n);
  std::iota(order.begin(), order.end(), 0);
  const auto better = [&](int32_t a, int32_t b) { return c.value[a] > c.value[b] || (c.value[a] == c.value[b] && a < b); };
  if (!c.key && needed < c.n) {
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(needed - 1), order.end(), better);
    order.resize(needed);
  }
  std::sort(order.begin(), order.end(), better);
  if (!c.key) return order;
  uint32_t n_keys = 0;
  const auto key_id = dense_ids(c.key, order, &n_keys);
  std::vector<char> seen(n_keys, 0);
  size_t kept = 0;
  for (size_t j = 0; j < order.size(); ++j) {
    if (seen[key_id[j]]) continue;
    seen[key_id[j]] = 1;
    order[kept++] = order[j];
  }
  order.resize(kept);
  return order;
}

// The per-request state of one draw of the policy, over the deduplicated
// candidates in value order (position j in this order is "slot j").
class Draw {
 public:
  Draw(const Candidates& c, const Policy& p, const std::vector<int32_t>& order)
      : c_(c), p_(p), order_(order), m_(order.size()) {
    if (c.merchant && p.max_per_merchant) merchant_ = dense_ids(c.merchant, order, &n_merchants_);
    if (c.category && (p.max_per_category || p.category_decay != 1.0f))
      category_ = dense_ids(c.category, order, &n_categories_);
    decay_pow_.resize(p.k + 1);
    for (uint32_t i = 0; i <= p.k; ++i) decay_pow_[i] = std::pow(double(p.category_decay), double(i));
    if (p.temperature > 0) {
      window_ = p.explore_window ? std::min<size_t>(p.explore_window, m_) : m_;
      weight_.resize(window_);
      const double top = m_ ? c.value[order[0]] : 0.0;
      for (size_t j = 0; j < window_; ++j)
        weight_[j] = std::exp((double(c.value[order[j]]) - top) / double(p.temperature));
    }
  }

  // Fills `slots` (indices into the value order) and their choice probabilities.
  void run(Rng* rng, std::vector<uint32_t>* slots, std::vector<double>* choice) {
    reset();
    slots->clear();
    if (choice) choice->clear();
    for (uint32_t pos = 0; pos < p_.k; ++pos) {
      double probability = 1.0;
      int64_t j = rng ? sample(rng, &probability) : -1;
      if (j < 0) j = greedy(rng ? window_ : 0);
      if (j < 0) break;
      take(size_t(j));
      slots->push_back(uint32_t(j));
      if (choice) choice->push_back(probability);
    }
  }

 private:
  void reset() {
    taken_.assign(m_, 0);
    merchant_count_.assign(n_merchants_, 0);
    category_count_.assign(n_categories_, 0);
  }

  bool eligible(size_t j) const {
    if (taken_[j]) return false;
    if (!merchant_.empty() && merchant_count_[merchant_[j]] >= p_.max_per_merchant) return false;
    if (p_.max_per_category && !category_.empty() && category_count_[category_[j]] >= p_.max_per_category)
      return false;
    return true;
  }

  double decay(size_t j) const {
    return category_.empty() ? 1.0 : decay_pow_[std::min<uint32_t>(category_count_[category_[j]], p_.k)];
  }

  void take(size_t j) {
    taken_[j] = 1;
    if (!merchant_.empty()) ++merchant_count_[merchant_[j]];
    if (!category_.empty()) ++category_count_[category_[j]];
  }

  // The best eligible slot at or after `from`, by decayed value. A decayed
  // value never exceeds the value, so the scan stops at the first slot whose
  // plain value cannot beat the best found.
  int64_t greedy(size_t from) const {
    int64_t best = -1;
    double best_value = -std::numeric_limits<double>::infinity();
    for (size_t j = from; j < m_; ++j) {
      const double v = c_.value[order_[j]];
      if (best >= 0 && v <= best_value) break;
      if (!eligible(j)) continue;
      const double d = decay(j);
      const double e = v >= 0 ? v * d : v / d;
      if (e > best_value) {
        best = int64_t(j);
        best_value = e;
      }
    }
    return best;
  }

  // A Plackett-Luce draw among the eligible slots of the window; -1 when none.
  int64_t sample(Rng* rng, double* probability) {
    double total = 0;
    for (size_t j = 0; j < window_; ++j)
      if (eligible(j)) total += weight_[j] * decay(j);
    if (!(total > 0)) return rescaled_sample(rng, probability);
    const double target = rng->uniform() * total;
    double acc = 0;
    int64_t last = -1;
    for (size_t j = 0; j < window_; ++j) {
      if (!eligible(j)) continue;
      const double w = weight_[j] * decay(j);
      acc += w;
      last = int64_t(j);
      if (target < acc) {
        *probability = w / total;
        return last;
      }
    }
    *probability = weight_[size_t(last)] * decay(size_t(last)) / total;  // rounding at the top end
    return last;
  }

  // Every eligible weight underflowed (the best items are capped away and the
  // rest lie far below them): the same draw with weights relative to the best
  // eligible value instead of the overall best.
  int64_t rescaled_sample(Rng* rng, double* probability) {
    double top = -std::numeric_limits<double>::infinity();
    for (size_t j = 0; j < window_; ++j)
      if (eligible(j)) top = std::max(top, double(c_.value[order_[j]]));
    if (top == -std::numeric_limits<double>::infinity()) return -1;
    const double t = p_.temperature;
    double total = 0;
    for (size_t j = 0; j < window_; ++j)
      if (eligible(j)) total += std::exp((c_.value[order_[j]] - top) / t) * decay(j);
    const double target = rng->uniform() * total;
    double acc = 0;
    int64_t last = -1;
    double w = 0;
    for (size_t j = 0; j < window_; ++j) {
      if (!eligible(j)) continue;
      w = std::exp((c_.value[order_[j]] - top) / t) * decay(j);
      acc += w;
      last = int64_t(j);
      if (target < acc) break;
    }
    *probability = w / total;
    return last;
  }

  const Candidates& c_;
  const Policy& p_;
  const std::vector<int32_t>& order_;
  size_t m_;
  size_t window_ = 0;
  std::vector<uint32_t> merchant_, category_;
  uint32_t n_merchants_ = 0, n_categories_ = 0;
  std::vector<double> decay_pow_, weight_;
  std::vector<char> taken_;
  std::vector<uint32_t> merchant_count_, category_count_;
};

void check(const Candidates& c, const Policy& p) {
  if (p.k < 1) throw ValueError("k: expected >= 1, got " + std::to_string(p.k));
  if (!(p.category_decay > 0.0f && p.category_decay <= 1.0f))
    throw ValueError("category_decay: expected a value in (0, 1], got " + std::to_string(p.category_decay));
  if (!(p.temperature >= 0.0f) || std::isinf(p.temperature))
    throw ValueError("temperature: expected a finite value >= 0, got " + std::to_string(p.temperature));
  if (p.max_per_merchant && !c.merchant) throw ValueError("merchant: needed by max_per_merchant");
  if ((p.max_per_category || p.category_decay != 1.0f) && !c.category)
    throw ValueError("category: needed by max_per_category / category_decay");
  for (size_t i = 0; i < c.n; ++i)
    if (std::isnan(c.value[i])) throw ValueError("value: NaN at candidate " + std::to_string(i));
}

}  // namespace

Result rerank(const Candidates& c, const Policy& p, uint64_t seed) {
  check(c, p);
  // Without caps or diversity, greedy positions take the best k in order and
  // an exploring draw never looks past its window (or, below a window
  // smaller than k, past the best k): nothing else needs ordering.
  const bool rules = p.max_per_merchant || p.max_per_category || p.category_decay != 1.0f;
  const bool windowed = p.temperature == 0 || p.explore_window;
  const size_t needed = rules || !windowed ? c.n : std::max<size_t>(p.k, p.temperature > 0 ? p.explore_window : 0);
  const std::vector<int32_t> order = unique_by_value(c, needed);
  Draw draw(c, p, order);
  Result result;
  std::vector<uint32_t> slots;
  const bool explore = p.temperature > 0;
  Rng rng{mix64(seed)};
  draw.run(explore ? &rng : nullptr, &slots, &result.choice_probability);
  result.index.reserve(slots.size());
  for (uint32_t j : slots) result.index.push_back(order[j]);
  if (explore && p.propensity_samples) {
    std::vector<uint32_t> hits(slots.size(), 1);  // the served draw is one of the samples
    std::vector<uint32_t> other;
    for (uint32_t s = 1; s <= p.propensity_samples; ++s) {
      Rng r{mix64(seed ^ mix64(s))};
      draw.run(&r, &other, nullptr);
      for (size_t pos = 0; pos < std::min(other.size(), slots.size()); ++pos) hits[pos] += other[pos] == slots[pos];
    }
    result.propensity.resize(slots.size());
    for (size_t pos = 0; pos < slots.size(); ++pos)
      result.propensity[pos] = double(hits[pos]) / double(p.propensity_samples + 1);
  }
  return result;
}

std::vector<int64_t> best_positions(const float* value, size_t n, size_t count) {
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(value[i])) throw ValueError("score: NaN at candidate " + std::to_string(i));
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (count < n) {
    const auto better = [&](int64_t a, int64_t b) { return value[a] > value[b] || (value[a] == value[b] && a < b); };
    std::nth_element(order.begin(), order.begin() + std::ptrdiff_t(count), order.end(), better);
    order.resize(count);
    std::sort(order.begin(), order.end());
  }
  return order;
}

}  // namespace engine::rerank
