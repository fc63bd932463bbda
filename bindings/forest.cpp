// engine._core.Forest: the IR arrays in, a packed immutable forest out;
// predict on numpy rows or per-feature columns with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "trees/eval.hpp"
#include "trees/forest.hpp"

namespace engine::bind {

namespace py = pybind11;
using trees::Forest;

namespace {

trees::Transform parse_transform(const std::string& name) {
  if (name == "identity") return trees::Transform::identity;
  if (name == "sigmoid") return trees::Transform::sigmoid;
  if (name == "softmax") return trees::Transform::softmax;
  throw py::value_error("heads: unknown transform '" + name + "'");
}

trees::HeadSpec parse_head(const py::dict& h) {
  trees::HeadSpec s;
  s.name = h["name"].cast<std::string>();
  s.n_outputs = h["n_outputs"].cast<uint32_t>();
  s.transform = parse_transform(h["transform"].cast<std::string>());
  s.sigmoid_alpha = h["sigmoid_alpha"].cast<double>();
  const auto acc = h["accumulate"].cast<std::string>();
  if (acc != "f32" && acc != "f64") throw py::value_error("heads: unknown accumulate '" + acc + "'");
  s.accumulate_f32 = acc == "f32";
  s.n_trees = h["n_trees"].cast<uint32_t>();
  s.leaf_width = h["leaf_width"].cast<uint32_t>();
  s.base_score = h["base_score"].cast<std::vector<double>>();
  return s;
}

template <typename T>
py::array_t<T> field(const py::dict& arrays, const char* name, size_t expected, bool check) {
  if (!arrays.contains(name)) throw py::value_error(std::string("forest arrays: missing '") + name + "'");
  auto a = require_array<T>(arrays[name], name, 1);
  if (check && size_t(a.size()) != expected)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(expected) +
                          " elements, got " + std::to_string(a.size()));
  return a;
}

std::shared_ptr<Forest> make_forest(uint32_t n_features, const py::list& heads, const py::dict& arrays) {
  trees::ForestInput in;
  in.n_features = n_features;
  for (const auto& h : heads) in.heads.push_back(parse_head(h.cast<py::dict>()));
  auto feature = field<int32_t>(arrays, "feature", 0, false);
  const size_t n = size_t(feature.size());
  auto tree_output = field<int32_t>(arrays, "tree_output", 0, false);
  const size_t n_trees = size_t(tree_output.size());
  auto tree_offsets = field<int64_t>(arrays, "tree_offsets", n_trees + 1, true);
  auto threshold = field<float>(arrays, "threshold", n, true);
  auto left = field<int32_t>(arrays, "left", n, true);
  auto right = field<int32_t>(arrays, "right", n, true);
  auto flags = field<uint8_t>(arrays, "flags", n, true);
  auto cat_begin = field<int64_t>(arrays, "cat_begin", n, true);
  auto cat_end = field<int64_t>(arrays, "cat_end", n, true);
  auto cat_words = field<uint32_t>(arrays, "cat_words", 0, false);
  auto leaf_value = field<double>(arrays, "leaf_value", 0, false);
  in.n_nodes = n;
  in.n_trees = n_trees;
  in.tree_offsets = tree_offsets.data();
  in.tree_output = tree_output.data();
  in.feature = feature.data();
  in.threshold = threshold.data();
  in.left = left.data();
  in.right = right.data();
  in.flags = flags.data();
  in.cat_begin = cat_begin.data();
  in.cat_end = cat_end.data();
  in.cat_words = cat_words.data();
  in.n_cat_words = size_t(cat_words.size());
  in.leaf_value = leaf_value.data();
  in.n_leaf_values = size_t(leaf_value.size());
  py::gil_scoped_release release;
  return std::make_shared<Forest>(Forest::build(in));
}

py::array_t<float> output_for(const Forest& f, size_t n) {
  return py::array_t<float>({py::ssize_t(n), py::ssize_t(f.n_outputs())});
}

py::array_t<float> predict(const Forest& f, const py::handle& X, bool raw, int threads,
                           const trees::EvalKernels* kernels, size_t tree_begin = 0, size_t tree_end = SIZE_MAX) {
  auto x = require_array<float>(X, "X", 2);
  if (size_t(x.shape(1)) != f.n_features())
    throw py::value_error("X: expected " + std::to_string(f.n_features()) + " features per row, got " +
                          std::to_string(x.shape(1)));
  const size_t n = size_t(x.shape(0));
  auto out = output_for(f, n);
  float* o = out.mutable_data();
  const float* data = x.data();
  py::gil_scoped_release release;
  f.predict(data, n, f.n_features(), raw, threads, o, kernels, tree_begin, tree_end);
  return out;
}

}  // namespace

void bind_forest(py::module_& m) {
  py::class_<Forest, std::shared_ptr<Forest>>(m, "Forest")
      .def(py::init(&make_forest), py::arg("n_features"), py::arg("heads"), py::arg("arrays"))
      .def("predict", [](const Forest& f, const py::handle& X, bool raw, int threads) {
        return predict(f, X, raw, threads, nullptr);
      }, py::arg("X"), py::arg("raw"), py::arg("threads") = 1)
      // Raw scores from trees [tree_begin, tree_end) only (a head's first trees).
      .def("predict_trees", [](const Forest& f, const py::handle& X, size_t tree_begin, size_t tree_end,
                               int threads) {
        return predict(f, X, true, threads, nullptr, tree_begin, tree_end);
      }, py::arg("X"), py::arg("tree_begin"), py::arg("tree_end"), py::arg("threads") = 1)
      // Test hook: the same with one SIMD level's kernel.
      .def("predict_level", [](const Forest& f, const std::string& level, const py::handle& X, bool raw,
                               size_t tree_begin, size_t tree_end) {
        const trees::EvalKernels* k = trees::eval_for(level.c_str());
        if (!k) throw py::value_error("level '" + level + "' is unknown or not runnable here");
        return predict(f, X, raw, 1, k, tree_begin, tree_end);
      }, py::arg("level"), py::arg("X"), py::arg("raw"), py::arg("tree_begin") = 0,
         py::arg("tree_end") = SIZE_MAX)
      .def("predict_columns", [](const Forest& f, const py::list& columns, size_t n, bool raw, int threads) {
        if (size_t(py::len(columns)) != f.n_features())
          throw py::value_error("columns: expected one per feature");
        std::vector<py::array_t<float>> held;  // keeps the columns alive while the GIL is released
        std::vector<const float*> ptrs;
        for (const auto& c : columns) {
          if (c.is_none()) {
            ptrs.push_back(nullptr);
            continue;
          }
          auto a = require_array<float>(c, "column", 1);
          if (size_t(a.size()) != n) throw py::value_error("columns: every column needs the same length");
          ptrs.push_back(a.data());
          held.push_back(std::move(a));
        }
        auto out = output_for(f, n);
        float* o = out.mutable_data();
        py::gil_scoped_release release;
        f.predict_columns(ptrs.data(), n, raw, threads, o);
        return out;
      }, py::arg("columns"), py::arg("n"), py::arg("raw"), py::arg("threads") = 1)
      .def_property_readonly("n_features", &Forest::n_features)
      .def_property_readonly("n_outputs", &Forest::n_outputs)
      .def_property_readonly("n_trees", &Forest::n_trees)
      .def_property_readonly("n_nodes", &Forest::n_nodes)
      .def_property_readonly("n_leaves", &Forest::n_leaves)
      .def_property_readonly("max_depth", &Forest::max_depth)
      // Whether the binned walk (cpp/trees/binned.hpp) can evaluate it.
      .def_property_readonly("binned", [](const Forest& f) { return f.binned().usable; })
      // Distinct splits a block compares once for every tree holding them
      // (binned.hpp's split_pairs); 0 when each tree compares its own.
      .def_property_readonly("binned_shared_splits", [](const Forest& f) { return f.binned().split_pairs.size(); });
  m.def("forest_levels", [] {
    std::vector<std::string> names;
    for (const auto* k : trees::runnable_eval()) names.emplace_back(k->name);
    return names;
  }, "The forest kernel levels this CPU can run (the test suite compares them).");
}

}  // namespace engine::bind
