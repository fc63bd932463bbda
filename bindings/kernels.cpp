// Direct access to each SIMD level's kernels, so tests can compare every
// level the CPU supports with the scalar reference in one process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/convert.hpp"
#include "simd/dispatch.hpp"

namespace engine::bind {

namespace {

const simd::Kernels& kernels_for(const std::string& level_name) {
  simd::Level level;
  if (!simd::parse_level(level_name, &level))
    throw py::value_error("level: expected 'avx512', 'avx2' or 'scalar', got '" + level_name + "'");
  const simd::Kernels* k = simd::for_level(level);
  if (!k) throw py::value_error("level: this CPU cannot run '" + level_name + "'");
  return *k;
}

// storage: 'f32' | 'f16' (rows as uint16 bits) | 'i8'
py::array_t<float> dot(const std::string& level, py::array_t<float> query, py::array rows,
                       py::object idx_obj) {
  const auto& k = kernels_for(level);
  auto q = require_array<float>(query, "query", 1);
  if (rows.ndim() != 2) throw py::value_error("rows: expected a 2-D array");
  const size_t dim = size_t(rows.shape(1));
  if (size_t(q.size()) != dim) throw py::value_error("query: length differs from rows.shape[1]");
  size_t n = size_t(rows.shape(0));
  const uint32_t* idx = nullptr;
  py::array_t<uint32_t> idx_arr;
  if (!idx_obj.is_none()) {
    idx_arr = require_array<uint32_t>(idx_obj, "idx", 1);
    for (py::ssize_t i = 0; i < idx_arr.size(); ++i)
      if (idx_arr.data()[i] >= n) throw py::value_error("idx: row index out of range");
    n = size_t(idx_arr.size());
    idx = idx_arr.data();
  }
  py::array_t<float> out{py::ssize_t(n)};
  if (rows.dtype().is(py::dtype::of<float>())) {
    auto r = require_array<float>(rows, "rows", 2);
    k.dot_f32(q.data(), r.data(), idx, n, dim, out.mutable_data());
  } else if (rows.dtype().is(py::dtype::of<uint16_t>())) {
    auto r = require_array<uint16_t>(rows, "rows", 2);
    k.dot_f16(q.data(), r.data(), idx, n, dim, out.mutable_data());
  } else if (rows.dtype().is(py::dtype::of<int8_t>())) {
    auto r = require_array<int8_t>(rows, "rows", 2);
    k.dot_i8(q.data(), r.data(), idx, n, dim, out.mutable_data());
  } else {
    throw py::type_error("rows: expected float32, uint16 (f16 bits) or int8");
  }
  return out;
}

py::array_t<float> dot_multi(const std::string& level, py::object queries, py::object rows) {
  const auto& k = kernels_for(level);
  auto q = require_array<float>(queries, "queries", 2);
  auto r = require_array<float>(rows, "rows", 2);
  if (q.shape(1) != r.shape(1)) throw py::value_error("queries: dim differs from rows");
  py::array_t<float> out({q.shape(0), r.shape(0)});
  k.dot_f32_multi(q.data(), size_t(q.shape(0)), r.data(), size_t(r.shape(0)), size_t(r.shape(1)),
                  out.mutable_data());
  return out;
}

py::array_t<uint16_t> to_f16(const std::string& level, py::object values) {
  const auto& k = kernels_for(level);
  auto v = require_array<float>(values, "values", 1);
  py::array_t<uint16_t> out{v.size()};
  k.f32_to_f16(v.data(), out.mutable_data(), size_t(v.size()));
  return out;
}

}  // namespace

void bind_kernels(py::module_& m) {
  auto k = m.def_submodule("kernels", "Per-level kernels, for agreement tests and benchmarks.");
  k.def("supported_levels", &simd::supported_level_names);
  k.def("dot", &dot, py::arg("level"), py::arg("query"), py::arg("rows"), py::arg("idx") = py::none());
  k.def("dot_multi", &dot_multi, py::arg("level"), py::arg("queries"), py::arg("rows"));
  k.def("f32_to_f16", &to_f16, py::arg("level"), py::arg("values"));
}

}  // namespace engine::bind
