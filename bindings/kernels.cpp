// Direct access to each SIMD level's kernels, so tests can compare every
// level the CPU supports with the scalar reference in one process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/convert.hpp"
#include "simd/dispatch.hpp"
#include "simd/i8_blocks.hpp"
#include "simd/u4_blocks.hpp"

namespace engine::bind {

namespace {

std::vector<std::string> table_names() {
  std::vector<std::string> names;
  for (const simd::Kernels* t : simd::runnable_tables()) names.emplace_back(t->name);
  return names;
}

const simd::Kernels& kernels_for(const std::string& name) {
  for (const simd::Kernels* t : simd::runnable_tables())
    if (name == t->name) return *t;
  throw py::value_error("level: this CPU cannot run '" + name + "' (it runs: " +
                        std::string(py::str(py::cast(table_names()))) + ")");
}

// rows: float32, uint16 (f16 bits) or int8; an int8 query goes with int8 rows
// and gives exact int32 dot products.
py::array dot(const std::string& level, py::array query, py::array rows, py::object idx_obj) {
  const auto& k = kernels_for(level);
  if (rows.ndim() != 2) throw py::value_error("rows: expected a 2-D array");
  const size_t dim = size_t(rows.shape(1));
  if (size_t(query.size()) != dim) throw py::value_error("query: length differs from rows.shape[1]");
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
  if (rows.dtype().is(py::dtype::of<int8_t>())) {
    auto q = require_array<int8_t>(query, "query", 1);
    auto r = require_array<int8_t>(rows, "rows", 2);
    py::array_t<int32_t> out{py::ssize_t(n)};
    k.dot_i8(q.data(), r.data(), idx, n, dim, out.mutable_data());
    return out;
  }
  auto q = require_array<float>(query, "query", 1);
  py::array_t<float> out{py::ssize_t(n)};
  if (rows.dtype().is(py::dtype::of<float>())) {
    auto r = require_array<float>(rows, "rows", 2);
    k.dot_f32(q.data(), r.data(), idx, n, dim, out.mutable_data());
  } else if (rows.dtype().is(py::dtype::of<uint16_t>())) {
    auto r = require_array<uint16_t>(rows, "rows", 2);
    k.dot_f16(q.data(), r.data(), idx, n, dim, out.mutable_data());
  } else {
    throw py::type_error("rows: expected float32, uint16 (f16 bits) or int8");
  }
  return out;
}

// Positions of the values above a bound (a 4-bit scan's survivors).
py::array_t<uint32_t> above_i32(const std::string& level, py::object values, int32_t bound) {
  const auto& k = kernels_for(level);
  auto x = require_array<int32_t>(values, "x", 1);
  std::vector<uint32_t> positions(size_t(x.size()));
  const size_t count = k.above_i32(x.data(), size_t(x.size()), bound, positions.data());
  py::array_t<uint32_t> out{py::ssize_t(count)};
  std::copy_n(positions.data(), count, out.mutable_data());
  return out;
}

// A query or weight vector zero-padded to whole groups of 4 dimensions, as
// the blocked kernels read it.
std::vector<int8_t> padded_to_groups(const int8_t* v, size_t dim) {
  std::vector<int8_t> padded(4 * simd::i8_groups(dim), 0);
  std::copy_n(v, dim, padded.data());
  return padded;
}

// The first n of a blocked kernel's sums (the rest are padding rows).
py::array_t<int32_t> first_sums(const std::vector<int32_t>& sums, size_t n) {
  py::array_t<int32_t> out{py::ssize_t(n)};
  std::copy_n(sums.data(), n, out.mutable_data());
  return out;
}

// Sums of int8 weights times uint8 codes in [0, 15] through the 4-bit
// interleaved layout of long exact scans (simd/u4_blocks.hpp).
py::array_t<int32_t> dot_u4_blocked(const std::string& level, py::object weights, py::object codes) {
  const auto& k = kernels_for(level);
  auto w = require_array<int8_t>(weights, "weights", 1);
  auto c = require_array<uint8_t>(codes, "codes", 2);
  const size_t n = size_t(c.shape(0)), dim = size_t(c.shape(1));
  if (size_t(w.size()) != dim) throw py::value_error("weights: length differs from codes.shape[1]");
  for (size_t i = 0; i < n * dim; ++i)
    if (c.data()[i] > 15) throw py::value_error("codes: values must be in [0, 15]");
  const std::vector<uint8_t> blocked = simd::interleave_u4(c.data(), n, dim);
  std::vector<int32_t> sums(simd::u4_blocks(n) * simd::kU4BlockRows);
  k.dot_u4_blocked(padded_to_groups(w.data(), dim).data(), blocked.data(), simd::u4_blocks(n),
                   simd::i8_groups(dim), sums.data());
  return first_sums(sums, n);
}

// dot() for int8 rows through the interleaved layout the IVF centroids use.

py::array_t<int32_t> dot_i8_blocked(const std::string& level, py::object query, py::object rows) {
  const auto& k = kernels_for(level);
  auto q = require_array<int8_t>(query, "query", 1);
  auto r = require_array<int8_t>(rows, "rows", 2);
  const size_t n = size_t(r.shape(0)), dim = size_t(r.shape(1));
  if (size_t(q.size()) != dim) throw py::value_error("query: length differs from rows.shape[1]");
  const std::vector<int8_t> blocked = simd::interleave_i8(r.data(), n, dim);
  std::vector<int32_t> sums(simd::i8_blocks(n) * simd::kI8BlockRows);
  k.dot_i8_blocked(padded_to_groups(q.data(), dim).data(), blocked.data(), simd::i8_blocks(n),
                   simd::i8_groups(dim), sums.data());
  return first_sums(sums, n);
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
  k.def("tables", &table_names, "Kernel tables this CPU can run (levels and their variants).");
  k.def("dot", &dot, py::arg("level"), py::arg("query"), py::arg("rows"), py::arg("idx") = py::none());
  k.def("above_i32", &above_i32, py::arg("level"), py::arg("x"), py::arg("bound"));
  k.def("dot_u4_blocked", &dot_u4_blocked, py::arg("level"), py::arg("weights"), py::arg("codes"));
  k.def("dot_i8_blocked", &dot_i8_blocked, py::arg("level"), py::arg("query"), py::arg("rows"));
  k.def("dot_multi", &dot_multi, py::arg("level"), py::arg("queries"), py::arg("rows"));
  k.def("f32_to_f16", &to_f16, py::arg("level"), py::arg("values"));
}

}  // namespace engine::bind
