// A surface's stages after the features, in one native call: the first
// phase (raw scores of prefix tree ranges, its blend, the cut to the best
// `keep`), the forest's heads on the kept candidates, the value blend and
// the re-rank. Each step was its own Python-level call with numpy gathers
// between them (~80 us of a two-phase request's ~1 ms, most of it on caches
// the heads had just flushed); here they share one pass of buffers.
//
// Results equal the step-by-step path bit for bit: the same kernels in the
// same order (Forest::predict, ValueBlend::evaluate, best_positions, rerank).
// Immutable after construction; any number of threads may call score().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "rerank/rerank.hpp"
#include "rerank/value_blend.hpp"
#include "trees/forest.hpp"

namespace engine::rerank {

struct FirstPhaseModel {
  // Tree ranges [begin, end) of the global tree order; the blend's heads are
  // their raw scores side by side (range 0's outputs, then range 1's, ...).
  std::vector<std::pair<size_t, size_t>> ranges;
  std::shared_ptr<const ValueBlend> blend;
};

struct Scored {
  std::vector<int64_t> shown;     // positions in the input candidates, shown order
  std::vector<float> value;       // per shown item
  std::vector<float> heads;       // n_heads x shown, row-major
  std::vector<float> terms;       // n_terms x shown, row-major
  std::vector<double> choice;     // choice probability per position
  std::vector<double> propensity; // empty unless the policy explores with samples
  double heads_us = 0, value_us = 0;  // the stages' wall times (the rest of the call is the re-rank's)
};

class SurfaceScorer {
 public:
  // forest may be null (no heads: n_heads 0); first_phase.blend null: one
  // phase. merchant / category: one value per catalogue row (n_items), read
  // when the policy caps or diversifies by them; may be null otherwise.
  SurfaceScorer(std::shared_ptr<const trees::Forest> forest, size_t n_heads, FirstPhaseModel first_phase,
                size_t keep, std::shared_ptr<const ValueBlend> value, const int64_t* merchant,
                const int64_t* category, size_t n_items);

  // X: n x n_features float32 rows of candidates at item rows `rows` with
  // retrieval scores `retrieval`. The first phase runs when 0 < keep < n.
  Scored score(const float* X, size_t n, const int64_t* rows, const float* retrieval, const Policy& policy,
               uint64_t seed) const;

  size_t n_heads() const { return n_heads_; }
  size_t n_terms() const { return value_->n_terms(); }

 private:
  std::shared_ptr<const trees::Forest> forest_;
  size_t n_heads_, keep_;
  FirstPhaseModel first_;
  // With one first-phase range whose trees come, for each output, before
  // all of that output's other trees (a boosted head's first trees), the
  // full heads start the kept rows at their first-phase sums and add only
  // these ranges: the same doubles in the same order, without walking the
  // range twice (50 of 1,000 trees for the pipeline benchmark's heads).
  bool continues_first_ = false;
  std::vector<std::pair<size_t, size_t>> rest_;
  std::shared_ptr<const ValueBlend> value_;
  const int64_t* merchant_;
  const int64_t* category_;
  size_t n_items_;
};

}  // namespace engine::rerank
