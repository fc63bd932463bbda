// engine._core.Index: converts and checks arguments with the GIL held, then
// releases it for every build, search and validation.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>

#include "ann/index.hpp"
#include "bindings/convert.hpp"

namespace engine::bind {

using namespace engine::ann;

namespace {

// NaN or infinity would order results silently wrong: refuse them by row.
void require_finite(const float* v, size_t rows, size_t dim, const char* name) {
  for (size_t i = 0; i < rows * dim; ++i)
    if (!std::isfinite(v[i]))
      throw py::value_error(std::string(name) + ": row " + std::to_string(i / dim) +
                            " contains NaN or infinity");
}

// Every array of a segment, by the name it is saved under.
#define ENGINE_SEGMENT_ARRAYS(X)                                                           \
  X(uint64_t, ids) X(float, vectors) X(float, sqnorms) X(int64_t, attrs) X(uint64_t, post_col) \
  X(int64_t, post_values) X(uint64_t, post_offsets) X(uint32_t, post_rows)                   \
  X(uint64_t, sorted_ids) X(uint32_t, sorted_rows) X(float, centroids)                      \
  X(float, centroid_sqnorms) X(uint64_t, list_offsets) X(uint32_t, list_rows)                \
  X(uint8_t, codes) X(float, code_scales) X(int64_t, list_attrs)

py::dict export_segment(const SegmentView& view) {
  const SegmentArrays& a = view.segment->arrays();
  py::dict arrays;
  std::shared_ptr<const void> owner = view.segment;
#define X(T, name) arrays[#name] = to_numpy<T>(a.name, owner);
  ENGINE_SEGMENT_ARRAYS(X)
#undef X
  if (view.dead) {
    Array<uint64_t> dead(view.dead->data(), view.dead->size(), view.dead);
    arrays["deleted"] = to_numpy<uint64_t>(dead, view.dead);
  }
  py::dict meta;
  meta["dim"] = a.dim;
  meta["metric"] = metric_name(a.metric);
  meta["storage"] = storage_name(a.storage);
  meta["n_columns"] = a.n_columns;
  meta["cluster_column"] = a.cluster_column;
  meta["default_nprobe"] = a.default_nprobe;
  meta["nlist"] = a.nlist;
  meta["rows"] = a.rows();
  meta["live"] = view.live;
  return py::dict(py::arg("meta") = meta, py::arg("arrays") = arrays);
}

template <typename T>
Array<T> take(const py::dict& arrays, const char* name) {
  if (!arrays.contains(name)) throw FormatError(std::string("missing array '") + name + "'");
  return borrow<T>(arrays[name], name);
}

SegmentView import_segment(const py::dict& meta, const py::dict& arrays) {
  SegmentArrays a;
  try {
    a.dim = meta["dim"].cast<uint32_t>();
    a.metric = parse_metric(meta["metric"].cast<std::string>());
    a.storage = parse_storage(meta["storage"].cast<std::string>());
    a.n_columns = meta["n_columns"].cast<uint32_t>();
    a.cluster_column = meta["cluster_column"].cast<int32_t>();
    a.default_nprobe = meta["default_nprobe"].cast<uint32_t>();
    a.nlist = meta["nlist"].cast<uint32_t>();
  } catch (const py::error_already_set&) {
    throw FormatError("segment metadata: missing or mistyped field");
  } catch (const py::cast_error&) {
    throw FormatError("segment metadata: missing or mistyped field");
  } catch (const ValueError& e) {
    throw FormatError(std::string("segment metadata: ") + e.what());
  }
#define X(T, name) a.name = take<T>(arrays, #name);
  ENGINE_SEGMENT_ARRAYS(X)
#undef X
  SegmentView view;
  if (arrays.contains("deleted")) {
    auto d = require_array<uint64_t>(arrays["deleted"], "deleted", 1);
    view.dead = std::make_shared<std::vector<uint64_t>>(d.data(), d.data() + d.size());
  }
  {
    py::gil_scoped_release nogil;
    view.segment = Segment::from_arrays(std::move(a));
  }
  return view;
}

FilterSpec make_filter(const Index& index, const py::list& conditions, const py::object& allow) {
  FilterSpec f;
  for (const auto& item : conditions) {
    auto pair = item.cast<py::tuple>();
    const auto name = pair[0].cast<std::string>();
    const int col = index.column_index(name);
    if (col < 0) throw py::value_error("filter: unknown attribute '" + name + "'");
    auto values = require_array<int64_t>(pair[1], "filter values", 1);
    Condition c;
    c.column = uint32_t(col);
    c.values.assign(values.data(), values.data() + values.size());
    c.prepare();
    f.conditions.push_back(std::move(c));
  }
  if (!allow.is_none()) {
    auto ids = require_array<uint64_t>(allow, "filter", 1);
    f.has_allow = true;
    f.allow_ids.assign(ids.data(), ids.data() + ids.size());
    std::sort(f.allow_ids.begin(), f.allow_ids.end());
    f.allow_ids.erase(std::unique(f.allow_ids.begin(), f.allow_ids.end()), f.allow_ids.end());
  }
  return f;
}

}  // namespace

void bind_index(py::module_& m) {
  py::class_<Index>(m, "Index", "Native vector index; use engine.VectorIndex.")
      .def(py::init([](uint32_t dim, const std::string& metric, const std::string& storage,
                       size_t nlist, size_t min_ivf_rows, uint64_t seed) {
             IndexOptions o;
             o.dim = dim;
             o.metric = parse_metric(metric);
             o.storage = parse_storage(storage);
             o.nlist = nlist;
             o.min_ivf_rows = min_ivf_rows;
             o.seed = seed;
             return new Index(o);
           }),
           py::arg("dim"), py::arg("metric"), py::arg("storage"), py::arg("nlist") = 0,
           py::arg("min_ivf_rows") = 20000, py::arg("seed") = 0)
      .def_property_readonly("dim", [](const Index& i) { return i.options().dim; })
      .def_property_readonly("metric", [](const Index& i) { return metric_name(i.options().metric); })
      .def_property_readonly("storage", [](const Index& i) { return storage_name(i.options().storage); })
      .def_property_readonly("nlist_option", [](const Index& i) { return i.options().nlist; })
      .def_property_readonly("min_ivf_rows", [](const Index& i) { return i.options().min_ivf_rows; })
      .def_property_readonly("seed", [](const Index& i) { return i.options().seed; })
      .def_property_readonly("columns", [](const Index& i) { return i.snapshot()->columns; })
      .def("__len__", [](const Index& i) { return i.snapshot()->live(); })
      .def_property_readonly("segment_count", [](const Index& i) { return i.snapshot()->segments.size(); })
      .def("add",
           [](Index& self, py::object ids, py::object vectors, std::vector<std::string> columns,
              py::object attrs, int threads) {
             auto id = require_array<uint64_t>(ids, "ids", 1);
             auto vec = require_array<float>(vectors, "vectors", 2);
             auto at = require_array<int64_t>(attrs, "attributes", 2);
             const size_t n = size_t(id.size());
             if (size_t(vec.shape(0)) != n || size_t(vec.shape(1)) != self.options().dim)
               throw py::value_error("vectors: shape does not match (len(ids), dim)");
             if (size_t(at.shape(0)) != columns.size() || (columns.size() && size_t(at.shape(1)) != n))
               throw py::value_error("attributes: shape does not match (columns, len(ids))");
             py::gil_scoped_release nogil;
             self.add(id.data(), n, vec.data(), columns, at.data(), threads);
           },
           py::arg("ids"), py::arg("vectors"), py::arg("columns"), py::arg("attrs"), py::arg("threads") = 1)
      .def("remove",
           [](Index& self, py::object ids, bool missing_ok) {
             auto id = require_array<uint64_t>(ids, "ids", 1);
             py::gil_scoped_release nogil;
             return self.remove(id.data(), size_t(id.size()), missing_ok);
           },
           py::arg("ids"), py::arg("missing_ok") = false)
      .def("compact",
           [](Index& self, int threads) {
             py::gil_scoped_release nogil;
             self.compact(threads);
           },
           py::arg("threads") = 1)
      .def("search",
           [](const Index& self, py::object queries, size_t k, py::list conditions, py::object allow,
              uint32_t nprobe, bool exact, int threads) {
             auto q = require_array<float>(queries, "queries", 2);
             if (size_t(q.shape(1)) != self.options().dim)
               throw py::value_error("queries: expected dim " + std::to_string(self.options().dim));
             if (k == 0) throw py::value_error("k: must be a positive integer");
             require_finite(q.data(), size_t(q.shape(0)), size_t(q.shape(1)), "queries");
             FilterSpec filter = make_filter(self, conditions, allow);
             const size_t nq = size_t(q.shape(0));
             py::array_t<int64_t> ids({py::ssize_t(nq), py::ssize_t(k)});
             py::array_t<float> scores({py::ssize_t(nq), py::ssize_t(k)});
             SearchRequest req{q.data(), nq, k, nprobe, exact, threads};
             int64_t* id_out = ids.mutable_data();
             float* score_out = scores.mutable_data();
             {
               py::gil_scoped_release nogil;
               self.search(req, filter, id_out, score_out);
             }
             return py::make_tuple(ids, scores);
           },
           py::arg("queries"), py::arg("k"), py::arg("conditions"), py::arg("allow"),
           py::arg("nprobe") = 0, py::arg("exact") = false, py::arg("threads") = 1)
      .def("segments",
           [](const Index& self) {
             py::list out;
             for (const auto& v : self.snapshot()->segments) out.append(export_segment(v));
             return out;
           },
           "Each segment's metadata and arrays (zero-copy views) as save() writes them.")
      .def("restore",
           [](Index& self, std::vector<std::string> columns, py::list segments) {
             std::vector<SegmentView> views;
             for (const auto& s : segments) {
               auto d = s.cast<py::dict>();
               views.push_back(import_segment(d["meta"].cast<py::dict>(), d["arrays"].cast<py::dict>()));
             }
             py::gil_scoped_release nogil;
             self.restore(std::move(columns), std::move(views));
           },
           py::arg("columns"), py::arg("segments"));
}

}  // namespace engine::bind
