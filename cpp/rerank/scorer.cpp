#include "rerank/scorer.hpp"

#include <chrono>
#include <cstring>

#include "common/errors.hpp"

namespace engine::rerank {

namespace {

double since_us(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

SurfaceScorer::SurfaceScorer(std::shared_ptr<const trees::Forest> forest, size_t n_heads,
                             FirstPhaseModel first_phase, size_t keep, std::shared_ptr<const ValueBlend> value,
                             const int64_t* merchant, const int64_t* category, size_t n_items)
    : forest_(std::move(forest)), n_heads_(n_heads), keep_(keep), first_(std::move(first_phase)),
      value_(std::move(value)), merchant_(merchant), category_(category), n_items_(n_items) {
  if (forest_ && forest_->n_outputs() != n_heads_)
    throw ValueError("scorer: the forest has " + std::to_string(forest_->n_outputs()) + " outputs, not " +
                     std::to_string(n_heads_) + " heads");
  if (!forest_ && n_heads_) throw ValueError("scorer: heads without a forest");
  if (!value_ || value_->n_heads() != n_heads_ || value_->n_items() != n_items_)
    throw ValueError("scorer: the value blend does not fit the heads or the catalogue");
  if (first_.blend) {
    const size_t width = forest_ ? forest_->n_outputs() : 0;
    if (first_.blend->n_heads() != first_.ranges.size() * width || first_.blend->n_items() != n_items_)
      throw ValueError("scorer: the first-phase blend does not fit its tree ranges");
    for (auto [b, e] : first_.ranges)
      if (!forest_ || b > e || e > forest_->n_trees()) throw ValueError("scorer: a first-phase tree range is out of range");
    if (first_.ranges.size() == 1) {
      const auto [b, e] = first_.ranges[0];
      std::vector<bool> passed(forest_->n_outputs());  // an output's tree outside the range was seen
      continues_first_ = true;
      for (size_t t = 0; t < forest_->n_trees() && continues_first_; ++t) {
        const int32_t o = forest_->trees()[t].output;
        if (o < 0) continues_first_ = false;  // vector leaves add to several outputs
        else if (t < b || t >= e) passed[size_t(o)] = true;
        else if (passed[size_t(o)]) continues_first_ = false;
      }
      if (continues_first_)
        for (auto r : {std::pair<size_t, size_t>{0, b}, {e, forest_->n_trees()}})
          if (r.first < r.second) rest_.push_back(r);  // (each call bins the rows again)
    }
  }
}

Scored SurfaceScorer::score(const float* X, size_t n, const int64_t* rows, const float* retrieval,
                            const Policy& policy, uint64_t seed) const {
  for (size_t i = 0; i < n; ++i)
    if (rows[i] < 0 || size_t(rows[i]) >= n_items_)
      throw ValueError("rows[" + std::to_string(i) + "]: " + std::to_string(rows[i]) + " is out of range");
  if ((policy.max_per_merchant && !merchant_) || ((policy.max_per_category || policy.category_decay != 1.0f) && !category_))
    throw ValueError("scorer: the policy needs merchant / category columns it was not given");
  Scored out;
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n_features = forest_ ? forest_->n_features() : 0;

  // First phase: the kept positions, in candidate order.
  std::vector<int64_t> kept;
  std::vector<double> first_sums;  // continues_first_: the first phase's sums, n x outputs
  const bool two_phase = first_.blend && keep_ > 0 && keep_ < n;
  if (two_phase) {
    const size_t width = forest_ ? forest_->n_outputs() : 0, cols = first_.ranges.size() * width;
    std::vector<float> prefix(n * cols), part(n * width), total(n), terms(first_.blend->n_terms() * n);
    for (size_t g = 0; g < first_.ranges.size(); ++g) {
      const auto [b, e] = first_.ranges[g];
      if (continues_first_) {  // predict() of the range, its sums kept
        first_sums.resize(n * width);
        forest_->init_sums(n, first_sums.data());
        forest_->accumulate(X, n, n_features, first_sums.data(), b, e);
        forest_->finish(first_sums.data(), n, true, part.data());
      } else {
        forest_->predict(X, n, n_features, true, 1, part.data(), nullptr, b, e);
      }
      for (size_t j = 0; j < n; ++j) std::memcpy(&prefix[j * cols + g * width], &part[j * width], width * sizeof(float));
    }
    first_.blend->evaluate(n, rows, prefix.data(), retrieval, total.data(), terms.data());
    kept = best_positions(total.data(), n, keep_);
  }
  const size_t m = two_phase ? kept.size() : n;
  std::vector<float> kept_X, kept_retrieval;
  std::vector<int64_t> kept_rows;
  const float* x = X;
  const int64_t* r = rows;
  const float* s = retrieval;
  if (two_phase) {
    kept_X.resize(m * n_features);
    kept_rows.resize(m);
    kept_retrieval.resize(m);
    for (size_t j = 0; j < m; ++j) {
      std::memcpy(&kept_X[j * n_features], X + size_t(kept[j]) * n_features, n_features * sizeof(float));
      kept_rows[j] = rows[kept[j]];
      kept_retrieval[j] = retrieval[kept[j]];
    }
    x = kept_X.data();
    r = kept_rows.data();
    s = kept_retrieval.data();
  }
  std::vector<float> heads(m * n_heads_);
  if (forest_ && m && two_phase && continues_first_) {
    std::vector<double> sums(m * n_heads_);
    for (size_t j = 0; j < m; ++j)
      std::memcpy(&sums[j * n_heads_], &first_sums[size_t(kept[j]) * n_heads_], n_heads_ * sizeof(double));
    for (auto [b, e] : rest_) forest_->accumulate(x, m, n_features, sums.data(), b, e);
    forest_->finish(sums.data(), m, false, heads.data());
  } else if (forest_ && m) {
    forest_->predict(x, m, n_features, false, 1, heads.data());
  }
  out.heads_us = since_us(t0);

  const auto t1 = std::chrono::steady_clock::now();
  std::vector<float> value(m), terms(value_->n_terms() * m);
  if (m) value_->evaluate(m, r, heads.data(), s, value.data(), terms.data());
  out.value_us = since_us(t1);

  std::vector<int64_t> merchant, category;
  Candidates c;
  c.n = m;
  c.value = value.data();
  if (policy.max_per_merchant) {
    merchant.resize(m);
    for (size_t j = 0; j < m; ++j) merchant[j] = merchant_[r[j]];
    c.merchant = merchant.data();
  }
  if (policy.max_per_category || policy.category_decay != 1.0f) {
    category.resize(m);
    for (size_t j = 0; j < m; ++j) category[j] = category_[r[j]];
    c.category = category.data();
  }
  Result picked = rerank(c, policy, seed);
  const size_t k = picked.index.size(), n_terms = value_->n_terms();
  out.shown.resize(k);
  out.value.resize(k);
  out.heads.resize(n_heads_ * k);
  out.terms.resize(n_terms * k);
  for (size_t i = 0; i < k; ++i) {
    const size_t j = size_t(picked.index[i]);
    out.shown[i] = two_phase ? kept[j] : int64_t(j);
    out.value[i] = value[j];
    for (size_t h = 0; h < n_heads_; ++h) out.heads[h * k + i] = heads[j * n_heads_ + h];
    for (size_t t = 0; t < n_terms; ++t) out.terms[t * k + i] = terms[t * m + j];
  }
  out.choice = std::move(picked.choice_probability);
  out.propensity = std::move(picked.propensity);
  return out;
}

}  // namespace engine::rerank
