#include "rerank/value_blend.hpp"

#include <string>

#include "common/errors.hpp"

namespace engine::rerank {

ValueBlend::ValueBlend(std::vector<BlendFactor> factors, std::vector<BlendTerm> terms, size_t n_items,
                       size_t n_heads)
    : factors_(std::move(factors)), terms_(std::move(terms)), n_items_(n_items), n_heads_(n_heads) {
  if (terms_.empty()) throw ValueError("value model: needs at least one term");
  for (const BlendFactor& f : factors_) {
    if (f.kind == BlendFactor::Kind::head && f.head >= n_heads)
      throw ValueError("value model: head column " + std::to_string(f.head) + " of " + std::to_string(n_heads));
    const bool column = f.kind != BlendFactor::Kind::head && f.kind != BlendFactor::Kind::retrieval;
    if (column && !f.column) throw ValueError("value model: an item column factor without data");
  }
  for (const BlendTerm& t : terms_) {
    if (t.factors.empty()) throw ValueError("value model: a term without factors");
    for (uint32_t i : t.factors)
      if (i >= factors_.size()) throw ValueError("value model: factor index " + std::to_string(i) + " out of range");
  }
}

namespace {

using Kind = BlendFactor::Kind;

// One factor's values over the candidates: floats at f[j * stride], or
// int64 at i[j] (numpy multiplies those in float64).
struct Values {
  const float* f = nullptr;
  size_t stride = 1;
  const int64_t* i = nullptr;
};

}  // namespace

void ValueBlend::evaluate(size_t n, const int64_t* rows, const float* heads, const float* retrieval, float* total,
                          float* terms) const {
  for (size_t j = 0; j < n; ++j)
    if (rows[j] < 0 || uint64_t(rows[j]) >= n_items_)
      throw ValueError("rows: row " + std::to_string(rows[j]) + " at candidate " + std::to_string(j) +
                       " is outside the catalogue's " + std::to_string(n_items_) + " items");
  // Item columns are gathered first, each in a loop of loads alone: their
  // values are scattered over the catalogue, and a tight loop keeps many
  // misses in flight (computing as they arrive kept few, and took 3x longer).
  thread_local std::vector<float> floats;
  thread_local std::vector<int64_t> ints;
  floats.resize(factors_.size() * n);
  ints.resize(factors_.size() * n);
  std::vector<Values> values(factors_.size());
  for (size_t k = 0; k < factors_.size(); ++k) {
    const BlendFactor& f = factors_[k];
    float* fo = floats.data() + k * n;
    switch (f.kind) {
      case Kind::head: values[k] = {heads + f.head, n_heads_, nullptr}; break;
      case Kind::retrieval: values[k] = {retrieval, 1, nullptr}; break;
      case Kind::f32_column: {
        const float* c = static_cast<const float*>(f.column);
        for (size_t j = 0; j < n; ++j) fo[j] = c[rows[j]];
        values[k] = {fo, 1, nullptr};
        break;
      }
      case Kind::bool_column: {
        const uint8_t* c = static_cast<const uint8_t*>(f.column);
        for (size_t j = 0; j < n; ++j) fo[j] = c[rows[j]] ? 1.0f : 0.0f;
        values[k] = {fo, 1, nullptr};
        break;
      }
      case Kind::i64_column: {
        const int64_t* c = static_cast<const int64_t*>(f.column);
        int64_t* io = ints.data() + k * n;
        for (size_t j = 0; j < n; ++j) io[j] = c[rows[j]];
        values[k] = {nullptr, 1, io};
        break;
      }
    }
  }
  // Term by term, as ValueModel.evaluate: product = first factor as float32,
  // times each later factor, times the weight; the total adds the terms in order.
  for (size_t t = 0; t < terms_.size(); ++t) {
    const BlendTerm& term = terms_[t];
    float* p = terms + t * n;
    const Values& v0 = values[term.factors[0]];
    if (v0.i)
      for (size_t j = 0; j < n; ++j) p[j] = float(v0.i[j]);
    else
      for (size_t j = 0; j < n; ++j) p[j] = v0.f[j * v0.stride];
    for (size_t i = 1; i < term.factors.size(); ++i) {
      const Values& v = values[term.factors[i]];
      if (v.i)
        for (size_t j = 0; j < n; ++j) p[j] = float(double(p[j]) * double(v.i[j]));
      else
        for (size_t j = 0; j < n; ++j) p[j] *= v.f[j * v.stride];
    }
    for (size_t j = 0; j < n; ++j) p[j] *= term.weight;
    if (t == 0)
      for (size_t j = 0; j < n; ++j) total[j] = p[j];
    else
      for (size_t j = 0; j < n; ++j) total[j] += p[j];
  }
}

}  // namespace engine::rerank
