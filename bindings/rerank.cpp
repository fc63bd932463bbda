// engine._core.rerank: one call per request over its scored candidates.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/merged.hpp"
#include "bindings/held_blend.hpp"
#include "rerank/candidate_lists.hpp"
#include "rerank/merge.hpp"
#include "rerank/rerank.hpp"
#include "rerank/value_blend.hpp"

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
                           const py::handle& query, const py::handle& vector_rows) {
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
  std::optional<py::array_t<int32_t>> held_slots;
  if (!vectors.is_none() || !query.is_none()) {
    held_vectors = require_array<float>(vectors, "vectors", 2);
    held_query = require_array<float>(query, "query", 1);
    const size_t n_vectors = size_t(held_vectors->shape(0));
    if (!vector_rows.is_none()) {
      held_slots = require_array<int32_t>(vector_rows, "vector_rows", 1);
      if (size_t(held_slots->size()) != n_items)
        throw py::value_error("vector_rows: expected " + std::to_string(n_items) + " values (one per item), got " +
                              std::to_string(held_slots->size()));
    } else if (n_vectors != n_items || n_items > UINT32_MAX) {
      throw py::value_error("vectors: expected " + std::to_string(n_items) + " rows (at most 2^32), got " +
                            std::to_string(n_vectors));
    }
    if (held_query->size() != held_vectors->shape(1))
      throw py::value_error("query: expected " + std::to_string(held_vectors->shape(1)) + " values, got " +
                            std::to_string(held_query->size()));
    scoring = {held_vectors->data(), held_query->data(), size_t(held_vectors->shape(1)),
               held_slots ? held_slots->data() : nullptr, n_vectors};
  }
  return merged_arrays([&] { return rerank::merge_candidates(sources, r.data(), size_t(r.size()), n_items, scoring); });
}

HeldBlend make_blend(const py::list& weights, const py::list& term_factors, const py::list& factors,
                     size_t n_items, size_t n_heads) {
  using Kind = rerank::BlendFactor::Kind;
  HeldBlend held;
  std::vector<rerank::BlendFactor> fs;
  for (const py::handle f : factors) {
    rerank::BlendFactor b;
    if (py::isinstance<py::int_>(f)) {  // a head's column, or -1: the retrieval score
      const int64_t i = f.cast<int64_t>();
      b.kind = i < 0 ? Kind::retrieval : Kind::head;
      b.head = i < 0 ? 0 : uint32_t(i);
    } else {
      if (!py::isinstance<py::array>(f)) throw py::type_error("factors: expected ints or numpy item columns");
      auto a = py::reinterpret_borrow<py::array>(f);
      if (a.ndim() != 1 || size_t(a.size()) != n_items || !(a.flags() & py::array::c_style))
        throw py::value_error("factors: an item column must be C-contiguous with " + std::to_string(n_items) + " values");
      if (a.dtype().is(py::dtype::of<float>())) b.kind = Kind::f32_column;
      else if (a.dtype().is(py::dtype::of<int64_t>())) b.kind = Kind::i64_column;
      else if (a.dtype().is(py::dtype::of<bool>())) b.kind = Kind::bool_column;
      else throw py::type_error("factors: an item column must be float32, int64 or bool, got " + std::string(py::str(a.dtype())));
      b.column = a.data();
      held.columns.push_back(a);
    }
    fs.push_back(b);
  }
  if (weights.size() != term_factors.size()) throw py::value_error("weights and term_factors differ in length");
  std::vector<rerank::BlendTerm> terms;
  for (size_t t = 0; t < weights.size(); ++t)
    terms.push_back({weights[t].cast<float>(), term_factors[t].cast<std::vector<uint32_t>>()});
  held.blend = std::make_shared<rerank::ValueBlend>(std::move(fs), std::move(terms), n_items, n_heads);
  return held;
}

py::tuple evaluate_blend(const HeldBlend& held, const py::handle& rows, const py::handle& heads,
                         const py::handle& retrieval) {
  const rerank::ValueBlend& b = *held.blend;
  auto r = require_array<int64_t>(rows, "rows", 1);
  auto h = require_array<float>(heads, "heads", 2);
  auto s = require_array<float>(retrieval, "retrieval", 1);
  const size_t n = size_t(r.size());
  if (size_t(h.shape(0)) != n || size_t(h.shape(1)) != b.n_heads())
    throw py::value_error("heads: expected (" + std::to_string(n) + ", " + std::to_string(b.n_heads()) + "), got (" +
                          std::to_string(h.shape(0)) + ", " + std::to_string(h.shape(1)) + ")");
  if (size_t(s.size()) != n)
    throw py::value_error("retrieval: expected " + std::to_string(n) + " values, got " + std::to_string(s.size()));
  py::array_t<float> total{py::ssize_t(n)};
  py::array_t<float> terms({py::ssize_t(b.n_terms()), py::ssize_t(n)});
  {
    py::gil_scoped_release release;
    b.evaluate(n, r.data(), h.data(), s.data(), total.mutable_data(), terms.mutable_data());
  }
  return py::make_tuple(total, terms);
}

py::array_t<int64_t> list_rows(const py::handle& all, const py::handle& keys, const py::handle& offsets,
                               const py::handle& grouped, const std::vector<int64_t>& wanted, const py::list& checks,
                               size_t n) {
  std::vector<py::array> held;
  std::vector<rerank::RowCheck> row_checks;
  for (const py::handle item : checks) {
    const auto pair = item.cast<py::tuple>();
    if (pair.size() != 2) throw py::value_error("checks: expected (column, values) pairs");
    const py::handle column = pair[0];
    rerank::RowCheck c;
    c.is_bool = py::isinstance<py::array>(column) &&
                py::reinterpret_borrow<py::array>(column).dtype().is(py::dtype::of<bool>());
    held.push_back(c.is_bool ? py::array(require_array<bool>(column, "checks column", 1))
                             : py::array(require_array<int64_t>(column, "checks column", 1)));
    c.column = held.back().data();
    c.values = pair[1].cast<std::vector<int64_t>>();
    row_checks.push_back(std::move(c));
  }
  std::vector<int64_t> out;
  if (keys.is_none()) {
    auto a = require_array<int64_t>(all, "all", 1);
    py::gil_scoped_release release;
    out = rerank::list_rows(a.data(), size_t(a.size()), nullptr, wanted, row_checks, n);
  } else {
    auto k = require_array<int64_t>(keys, "keys", 1);
    auto o = require_array<int64_t>(offsets, "offsets", 1);
    auto g = require_array<int64_t>(grouped, "rows", 1);
    if (o.size() != k.size() + 1) throw py::value_error("offsets: expected one more value than keys");
    const rerank::ScopedLists scope{k.data(), size_t(k.size()), o.data(), g.data()};
    py::gil_scoped_release release;
    out = rerank::list_rows(nullptr, 0, &scope, wanted, row_checks, n);
  }
  return py::array_t<int64_t>(py::ssize_t(out.size()), out.data());
}

}  // namespace

void bind_rerank(py::module_& m) {
  m.def("list_rows", &list_rows, py::arg("all"), py::arg("keys"), py::arg("offsets"), py::arg("rows"),
        py::arg("wanted"), py::arg("checks"), py::arg("n"),
        "Up to n rows of a candidate list (cpp/rerank/candidate_lists.hpp): `all`, or with `keys` the CSR "
        "lists (keys, offsets, rows) of the `wanted` keys in key order; `checks` are (int64 or bool "
        "column, allowed values) pairs tested on the first max(4 n, 256) rows. Bundles' lists are "
        "validated at load (rows inside the catalogue, offsets consistent).");
  py::class_<HeldBlend>(m, "ValueBlend",
                        "A surface's value model over a request's candidates (cpp/rerank/value_blend.hpp).")
      .def(py::init(&make_blend), py::arg("weights"), py::arg("term_factors"), py::arg("factors"),
           py::arg("n_items"), py::arg("n_heads"),
           "factors: a head's column index, -1 for the retrieval score, or an item column (float32, int64 "
           "or bool, one value per catalogue row); term t is weights[t] times the product of "
           "factors[term_factors[t]].")
      .def("evaluate", &evaluate_blend, py::arg("rows"), py::arg("heads"), py::arg("retrieval"),
           "(total float32 (n,), terms float32 (n_terms, n)) for candidates at item rows `rows`, with "
           "heads (n, n_heads) and retrieval scores (n,).");
  m.def("merge_candidates", &merge_candidates, py::arg("rows"), py::arg("scores"), py::arg("codes"),
        py::arg("recent"), py::arg("n_items"), py::arg("vectors") = py::none(), py::arg("query") = py::none(),
        py::arg("vector_rows") = py::none(),
        "A request's candidates (cpp/rerank/merge.hpp): the sources' rows in order, each kept where it "
        "first appears, recent rows dropped. A source's scores may be None: the kept rows then score "
        "their inner product of `vectors` (n_items x dim float32, or with `vector_rows` (int32 per item) "
        "item i's row vector_rows[i], -1 a zero vector) and `query`. Returns (rows int64, source code "
        "int8, score float32).");
  m.def(
      "rerank",
      [](const py::handle& value, const py::handle& key, const py::handle& merchant, const py::handle& category,
         uint32_t k, uint32_t max_per_merchant, uint32_t max_per_category, float category_decay,
         float temperature, uint32_t explore_window, uint32_t propensity_samples, uint64_t seed) {
        const rerank::Policy p{k, max_per_merchant, max_per_category, category_decay, temperature,
                               explore_window, propensity_samples};
        return rerank(value, key, merchant, category, p, seed);
      },
      py::arg("value"), py::arg("key"), py::arg("merchant"), py::arg("category"), py::arg("k"),
      py::arg("max_per_merchant") = 0, py::arg("max_per_category") = 0, py::arg("category_decay") = 1.0f,
      py::arg("temperature") = 0.0f, py::arg("explore_window") = 0, py::arg("propensity_samples") = 0,
      py::arg("seed") = 0,
      "Dedupe, caps, diversity and optional Plackett-Luce exploration (cpp/rerank/rerank.hpp). "
      "Returns (candidate indices in shown order, choice probabilities, propensities or None).");
  m.def(
      "best_positions",
      [](const py::handle& score, size_t count) {
        auto s = require_array<float>(score, "score", 1);
        const float* v = s.data();
        const size_t n = size_t(s.size());
        std::vector<int64_t> best;
        {
          py::gil_scoped_release release;
          best = rerank::best_positions(v, n, count);
        }
        return py::array_t<int64_t>(py::ssize_t(best.size()), best.data());
      },
      py::arg("score"), py::arg("count"),
      "Positions of the count largest scores (ties: lower position), ascending; all of them when count >= n.");
}

}  // namespace engine::bind
