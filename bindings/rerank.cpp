// engine._core.rerank: one call per request over its scored candidates.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "rerank/merge.hpp"
#include "rerank/rerank.hpp"

namespace engine::bind {

namespace py = pybind11;

namespace {

// An optional int64 column of the same length as `value`.
const int64_t* column(const py::handle& obj, const char* name, size_t n, std::optional<py::array_t<int64_t>>* held) {
  if (obj.is_none()) return nullptr;
  *held = require_array<int64_t>(obj, name, 1);
  if (size_t((*held)->size()) != n)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(n) + " values, got " +
                          std::to_string((*held)->size()));
  return (*held)->data();
}

py::tuple rerank(const py::handle& value, const py::handle& key, const py::handle& merchant,
                 const py::handle& category, const rerank::Policy& policy, uint64_t seed) {
  auto v = require_array<float>(value, "value", 1);
  rerank::Candidates c;
  c.n = size_t(v.size());
  c.value = v.data();
  std::optional<py::array_t<int64_t>> k_held, m_held, c_held;
  c.key = column(key, "key", c.n, &k_held);
  c.merchant = column(merchant, "merchant", c.n, &m_held);
  c.category = column(category, "category", c.n, &c_held);
  rerank::Result r;
  {
    py::gil_scoped_release release;
    r = rerank::rerank(c, policy, seed);
  }
  py::array_t<int32_t> index(py::ssize_t(r.index.size()), r.index.data());
  py::array_t<double> choice(py::ssize_t(r.choice_probability.size()), r.choice_probability.data());
  py::object propensity = py::none();
  if (!r.propensity.empty()) propensity = py::array_t<double>(py::ssize_t(r.propensity.size()), r.propensity.data());
  return py::make_tuple(index, choice, propensity);
}

py::tuple merge_candidates(const py::list& rows, const py::list& scores, const py::list& codes,
                           const py::handle& recent, size_t n_items, const py::handle& vectors,
                           const py::handle& query) {
  if (scores.size() != rows.size() || codes.size() != rows.size())
    throw py::value_error("merge_candidates: rows, scores and codes must list the same sources");
  std::vector<py::array_t<int64_t>> held_rows;
  std::vector<py::array_t<float>> held_scores;
  std::vector<rerank::Source> sources(rows.size());
  for (size_t s = 0; s < rows.size(); ++s) {
    held_rows.push_back(require_array<int64_t>(rows[s], "rows", 1));
    const float* source_scores = nullptr;
    if (!scores[s].is_none()) {
      held_scores.push_back(require_array<float>(scores[s], "scores", 1));
      if (held_scores.back().size() != held_rows.back().size())
        throw py::value_error("scores: source " + std::to_string(s) + " has " +
                              std::to_string(held_scores.back().size()) + " scores for " +
                              std::to_string(held_rows.back().size()) + " rows");
      source_scores = held_scores.back().data();
    }
    sources[s] = {held_rows.back().data(), source_scores, size_t(held_rows.back().size()), codes[s].cast<int8_t>()};
  }
  auto r = require_array<int64_t>(recent, "recent", 1);
  rerank::Scoring scoring;
  std::optional<py::array_t<float>> held_vectors, held_query;
  if (!vectors.is_none() || !query.is_none()) {
    held_vectors = require_array<float>(vectors, "vectors", 2);
    held_query = require_array<float>(query, "query", 1);
    if (size_t(held_vectors->shape(0)) != n_items || n_items > UINT32_MAX)
      throw py::value_error("vectors: expected " + std::to_string(n_items) + " rows (at most 2^32), got " +
                            std::to_string(held_vectors->shape(0)));
    if (held_query->size() != held_vectors->shape(1))
      throw py::value_error("query: expected " + std::to_string(held_vectors->shape(1)) + " values, got " +
                            std::to_string(held_query->size()));
    scoring = {held_vectors->data(), held_query->data(), size_t(held_vectors->shape(1))};
  }
  rerank::Merged m;
  try {
    py::gil_scoped_release release;
    m = rerank::merge_candidates(sources, r.data(), size_t(r.size()), n_items, scoring);
  } catch (const std::out_of_range& e) {
    throw py::value_error(e.what());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const auto n = py::ssize_t(m.rows.size());
  return py::make_tuple(py::array_t<int64_t>(n, m.rows.data()), py::array_t<int8_t>(n, m.source.data()),
                        py::array_t<float>(n, m.score.data()));
}

}  // namespace

void bind_rerank(py::module_& m) {
  m.def("merge_candidates", &merge_candidates, py::arg("rows"), py::arg("scores"), py::arg("codes"),
        py::arg("recent"), py::arg("n_items"), py::arg("vectors") = py::none(), py::arg("query") = py::none(),
        "A request's candidates (cpp/rerank/merge.hpp): the sources' rows in order, each kept where it "
        "first appears, recent rows dropped. A source's scores may be None: the kept rows then score "
        "their inner product of `vectors` (n_items x dim float32) and `query`. Returns (rows int64, "
        "source code int8, score float32).");
  m.def(
      "rerank",
      [](const py::handle& value, const py::handle& key, const py::handle& merchant, const py::handle& category,
         uint32_t k, uint32_t max_per_merchant, uint32_t max_per_category, float category_decay,
         float temperature, uint32_t explore_window, uint32_t propensity_samples, uint64_t seed) {
        rerank::Policy p;
        p.k = k;
        p.max_per_merchant = max_per_merchant;
        p.max_per_category = max_per_category;
        p.category_decay = category_decay;
        p.temperature = temperature;
        p.explore_window = explore_window;
        p.propensity_samples = propensity_samples;
        return rerank(value, key, merchant, category, p, seed);
      },
      py::arg("value"), py::arg("key"), py::arg("merchant"), py::arg("category"), py::arg("k"),
      py::arg("max_per_merchant") = 0, py::arg("max_per_category") = 0, py::arg("category_decay") = 1.0f,
      py::arg("temperature") = 0.0f, py::arg("explore_window") = 0, py::arg("propensity_samples") = 0,
      py::arg("seed") = 0,
      "Dedupe, caps, diversity and optional Plackett-Luce exploration (cpp/rerank/rerank.hpp). "
      "Returns (candidate indices in shown order, choice probabilities, propensities or None).");
}

}  // namespace engine::bind
