// engine._core.IdMap: id -> row lookups for the request path.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "bindings/convert.hpp"
#include "common/id_map.hpp"

namespace engine::bind {

namespace py = pybind11;

namespace {

// Fewer ids than this are looked up with the GIL held: a request's handful
// of recent items takes microseconds, and giving the GIL away for them let
// the impression writer's thread take it for one of its steps (recent-item
// lookups' p99 in the pipeline benchmark: 22 us with the writer at work, 6
// without it).
constexpr size_t kReleaseGilIds = 4096;

template <class Lookup>
void maybe_without_gil(size_t n, Lookup&& lookup) {
  if (n < kReleaseGilIds) return lookup();
  py::gil_scoped_release release;
  lookup();
}

}  // namespace

void bind_id_map(py::module_& m) {
  py::class_<IdMap, std::shared_ptr<IdMap>>(
      m, "IdMap", "uint64 id -> row (cpp/common/id_map.hpp); immutable, safe to share between threads.")
      .def(py::init([](const py::handle& ids) {
             auto a = require_array<uint64_t>(ids, "ids", 1);
             py::gil_scoped_release release;
             return std::make_shared<IdMap>(a.data(), size_t(a.size()));
           }),
           py::arg("ids"), "ids[r] is row r's id; an id given twice maps to its first row.")
      .def("row", &IdMap::row, py::arg("id"), "The id's row, or -1.")
      .def(
          "rows",
          [](const IdMap& map, const py::handle& ids) {
            auto a = require_array<uint64_t>(ids, "ids", 1);
            py::array_t<int64_t> out(a.size());
            const uint64_t* in = a.data();
            int64_t* o = out.mutable_data();
            const size_t n = size_t(a.size());
            maybe_without_gil(n, [&] { map.rows(in, n, o); });
            return out;
          },
          py::arg("ids"), "Rows of uint64 ids, -1 for unknown ones (int64).")
      .def(
          "known_rows",
          [](const IdMap& map, const py::handle& ids) {
            auto a = require_array<uint64_t>(ids, "ids", 1);
            std::vector<int64_t> rows(size_t(a.size()));
            const uint64_t* in = a.data();
            size_t known = 0;
            maybe_without_gil(rows.size(), [&] {
              map.rows(in, rows.size(), rows.data());
              for (int64_t r : rows)
                if (r >= 0) rows[known++] = r;
            });
            return py::array_t<int64_t>(py::ssize_t(known), rows.data());
          },
          py::arg("ids"), "Rows of the known ids, in the ids' order; unknown ids are dropped (int64).")
      .def("__len__", &IdMap::size);
}

}  // namespace engine::bind
