// The last stage of a ranking request: from scored candidates to the k shown
// items, under business rules, with optional exploration.
//
// Rules, applied in this order:
//   1. dedupe: candidates with the same key (an item can arrive from ANN and
//      from a popularity source) keep their highest value;
//   2. caps: at most `max_per_merchant` items of one merchant and at most
//      `max_per_category` of one category (0 = no cap);
//   3. diversity: each item already placed above in the same category
//      multiplies an item's claim by `category_decay` (1 = off). Greedy
//      (temperature 0) decays the value (v * d^c for v >= 0, v / d^c below 0,
//      so it always penalises); exploring decays the sampling weight.
//   4. order: greedy takes the best remaining item per position. With
//      temperature T > 0 the list is a Plackett-Luce sample: position by
//      position, an eligible item among the `explore_window` best (0 = all)
//      is drawn with probability proportional to exp((v - v_max) / T) times
//      its diversity decay; when the window has nothing eligible left, the
//      next slots are filled greedily from below it.
//
// Probabilities logged for off-policy learning (exploration only):
//   choice_probability[j]: the exact probability that the policy chose the
//       shown item at position j given the items above it (their product is
//       the probability of the whole shown list);
//   propensity[j]: the probability that the shown item lands at position j
//       under the policy (the position-marginal, what item-position IPS
//       estimators need). It has no closed form under Plackett-Luce with
//       caps, so it is estimated from `propensity_samples` independent
//       re-draws of the same policy: (hits + 1) / (samples + 1), i.e. the
//       served draw counts as one of the samples, which keeps it above zero
//       (an IPS weight must be finite) at a bias of at most 1 / (samples + 1).
// Everything is deterministic for a seed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::rerank {

struct Policy {
  uint32_t k = 20;
  uint32_t max_per_merchant = 0;
  uint32_t max_per_category = 0;
  float category_decay = 1.0f;
  float temperature = 0.0f;
  uint32_t explore_window = 0;
  uint32_t propensity_samples = 0;
};

struct Candidates {
  size_t n = 0;
  const float* value = nullptr;
  const int64_t* key = nullptr;       // dedupe key (e.g. item row); may be null: no dedupe
  const int64_t* merchant = nullptr;  // may be null when there is no merchant cap
  const int64_t* category = nullptr;  // may be null when there is no category rule
};

struct Result {
  std::vector<int32_t> index;               // candidate indices, in shown order
  std::vector<double> choice_probability;   // per position; 1 when greedy
  std::vector<double> propensity;           // per position; empty unless sampled
};

// Throws engine::ValueError on NaN values or an invalid policy.
Result rerank(const Candidates& candidates, const Policy& policy, uint64_t seed);

// Positions of the `count` largest of value[0, n) (ties: the lower position),
// in increasing position order: a two-phase ranker's first-phase cut, which
// keeps the candidates' order. Throws ValueError on NaN.
std::vector<int64_t> best_positions(const float* value, size_t n, size_t count);

}  // namespace engine::rerank
