// engine._core.SurfaceScorer: a surface's first phase, heads, value blend and
// re-rank in one call with the GIL released (cpp/rerank/scorer.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings/convert.hpp"
#include "bindings/held_blend.hpp"
#include "rerank/scorer.hpp"
#include "trees/forest.hpp"

namespace engine::bind {

namespace py = pybind11;

namespace {

// The scorer and every Python object whose memory it reads.
struct HeldScorer {
  std::shared_ptr<const rerank::SurfaceScorer> scorer;
  std::vector<py::object> alive;
  size_t n_features = 0;
};

const int64_t* item_column(const py::handle& obj, const char* name, size_t n_items, HeldScorer& held) {
  if (obj.is_none()) return nullptr;
  auto a = require_array<int64_t>(obj, name, 1);
  if (size_t(a.size()) != n_items)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(n_items) + " values, got " +
                          std::to_string(a.size()));
  held.alive.push_back(a);
  return a.data();
}

HeldScorer make_scorer(const py::object& forest, size_t n_heads, const std::vector<std::pair<size_t, size_t>>& ranges,
                       const py::object& first_blend, size_t keep, const py::object& value,
                       const py::object& merchant, const py::object& category, size_t n_items) {
  HeldScorer held;
  std::shared_ptr<const trees::Forest> f;
  if (!forest.is_none()) {
    f = forest.cast<std::shared_ptr<trees::Forest>>();
    held.alive.push_back(forest);
    held.n_features = f->n_features();
  }
  rerank::FirstPhaseModel first;
  if (!first_blend.is_none()) {
    first.blend = first_blend.cast<const HeldBlend&>().blend;
    first.ranges = ranges;
    held.alive.push_back(first_blend);
  }
  auto blend = value.cast<const HeldBlend&>().blend;
  held.alive.push_back(value);
  const int64_t* m = item_column(merchant, "merchant", n_items, held);
  const int64_t* c = item_column(category, "category", n_items, held);
  try {
    held.scorer = std::make_shared<const rerank::SurfaceScorer>(f, n_heads, std::move(first), keep, blend, m, c, n_items);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return held;
}

py::tuple score(const HeldScorer& held, const py::handle& X, const py::handle& rows, const py::handle& retrieval,
                const rerank::Policy& policy, uint64_t seed) {
  auto r = require_array<int64_t>(rows, "rows", 1);
  auto s = require_array<float>(retrieval, "retrieval", 1);
  auto x = require_array<float>(X, "X", 2);
  const size_t n = size_t(r.size());
  if (size_t(s.size()) != n)
    throw py::value_error("retrieval: expected " + std::to_string(n) + " values, got " + std::to_string(s.size()));
  if (size_t(x.shape(0)) != n || (held.n_features && size_t(x.shape(1)) != held.n_features))
    throw py::value_error("X: expected (" + std::to_string(n) + ", " + std::to_string(held.n_features) + "), got (" +
                          std::to_string(x.shape(0)) + ", " + std::to_string(x.shape(1)) + ")");
  rerank::Scored out;
  try {
    py::gil_scoped_release release;
    out = held.scorer->score(x.data(), n, r.data(), s.data(), policy, seed);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const auto k = py::ssize_t(out.shown.size());
  const auto n_heads = py::ssize_t(held.scorer->n_heads()), n_terms = py::ssize_t(held.scorer->n_terms());
  py::object propensity = py::none();
  if (!out.propensity.empty()) propensity = py::array_t<double>(k, out.propensity.data());
  return py::make_tuple(py::array_t<int64_t>(k, out.shown.data()), py::array_t<float>(k, out.value.data()),
                        py::array_t<float>({n_heads, k}, out.heads.data()),
                        py::array_t<float>({n_terms, k}, out.terms.data()),
                        py::array_t<double>(k, out.choice.data()), propensity,
                        py::make_tuple(out.heads_us, out.value_us));
}

}  // namespace

void bind_scorer(py::module_& m) {
  py::class_<HeldScorer>(m, "SurfaceScorer",
                         "A surface's first phase, heads, value blend and re-rank in one call (cpp/rerank/scorer.hpp).")
      .def(py::init(&make_scorer), py::arg("forest"), py::arg("n_heads"), py::arg("first_ranges"),
           py::arg("first_blend"), py::arg("keep"), py::arg("value"), py::arg("merchant"), py::arg("category"),
           py::arg("n_items"),
           "forest: a Forest or None; first_blend: the first phase's ValueBlend over the raw scores of "
           "first_ranges' tree ranges side by side (None: one phase); keep: the first phase's cut; value: "
           "the surface's ValueBlend; merchant / category: int64 item columns (or None when the policy "
           "does not read them).")
      .def("score",
           [](const HeldScorer& held, const py::handle& X, const py::handle& rows, const py::handle& retrieval,
              uint32_t k, uint32_t max_per_merchant, uint32_t max_per_category, float category_decay,
              float temperature, uint32_t explore_window, uint32_t propensity_samples, uint64_t seed) {
             const rerank::Policy p{k, max_per_merchant, max_per_category, category_decay, temperature,
                                    explore_window, propensity_samples};
             return score(held, X, rows, retrieval, p, seed);
           },
           py::arg("X"), py::arg("rows"), py::arg("retrieval"), py::arg("k"), py::arg("max_per_merchant"),
           py::arg("max_per_category"), py::arg("category_decay"), py::arg("temperature"),
           py::arg("explore_window"), py::arg("propensity_samples"), py::arg("seed"),
           "(shown positions int64, value float32, heads float32 (n_heads, k), terms float32 (n_terms, k), "
           "choice probabilities float64, propensities float64 or None, (heads_us, value_us)).");
}

}  // namespace engine::bind
