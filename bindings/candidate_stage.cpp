// engine._core.CandidateStage: a request's ANN search, popular and new-item
// lists and merge in one call with the GIL released
// (cpp/rerank/candidate_stage.hpp). Construction keeps every array it reads
// alive; run() checks the request's arguments before releasing the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ann/index.hpp"
#include "bindings/convert.hpp"
#include "bindings/merged.hpp"
#include "rerank/candidate_stage.hpp"

namespace engine::bind {

namespace py = pybind11;

namespace {

class PyCandidateStage {
 public:
  // lists: {"popular" | "new": (all, {scope: (keys, offsets, rows)})} with
  // scopes merchant_id and category_id (engine/ranking/popularity.py, checked
  // at load); attributes: {name: int64 or bool column, one value per item};
  // vectors: float32 rows for scoring list rows, through vector_rows (int32
  // per item, -1: no vector) or one row per item when None.
  PyCandidateStage(py::object index, const py::dict& lists, const py::dict& attributes, const py::object& vectors,
                   const py::object& vector_rows, size_t n_items)
      : index_(std::move(index)) {
    const ann::Index& core_index = index_.cast<const ann::Index&>();
    std::vector<rerank::Attribute> attrs;
    for (const auto& [key, column] : attributes) {
      rerank::Attribute a;
      a.name = key.cast<std::string>();
      a.index_column = core_index.column_index(a.name);  // -1 in an index never added to
      a.is_bool = py::isinstance<py::array>(column) &&
                  py::reinterpret_borrow<py::array>(column).dtype().is(py::dtype::of<bool>());
      py::array held = a.is_bool ? py::array(require_array<bool>(column, "attributes", 1))
                                 : py::array(require_array<int64_t>(column, "attributes", 1));
      if (size_t(held.size()) != n_items)
        throw py::value_error("attributes['" + a.name + "']: expected " + std::to_string(n_items) + " values");
      a.values = held.data();
      alive_.push_back(held);
      attribute_of_[a.name] = attrs.size();
      attrs.push_back(std::move(a));
    }
    const size_t merchant = required_attribute("merchant_id"), category = required_attribute("category_id");
    const rerank::SourceLists popular = source_lists(lists, "popular"), fresh = source_lists(lists, "new");
    auto v = require_array<float>(vectors, "vectors", 2);
    alive_.push_back(v);
    rerank::Scoring scoring{v.data(), nullptr, size_t(v.shape(1)), nullptr, size_t(v.shape(0))};
    if (scoring.dim != core_index.options().dim)
      throw py::value_error("vectors: dim " + std::to_string(scoring.dim) + ", the index has " +
                            std::to_string(core_index.options().dim));
    if (!vector_rows.is_none()) {
      auto rows = require_array<int32_t>(vector_rows, "vector_rows", 1);
      if (size_t(rows.size()) != n_items) throw py::value_error("vector_rows: expected one value per item");
      alive_.push_back(rows);
      scoring.slots = rows.data();
    } else if (scoring.n_vectors != n_items) {
      throw py::value_error("vectors: expected one row per item");
    }
    dim_ = scoring.dim;
    core_ = std::make_unique<rerank::CandidateStage>(core_index, popular, fresh, std::move(attrs), merchant, category,
                                                     scoring, n_items);
  }

  py::tuple run(const py::object& user_vector, size_t n_ann, const py::list& conditions, uint32_t nprobe,
                size_t n_popular, size_t n_new, const py::handle& recent) const {
    rerank::CandidateRequest request{nullptr, n_ann, n_popular, n_new, nprobe};
    py::array_t<float> query;
    if (!user_vector.is_none()) {
      query = require_array<float>(user_vector, "user_vector", 1);
      if (size_t(query.size()) != dim_)
        throw py::value_error("user_vector: expected " + std::to_string(dim_) + " values, got " +
                              std::to_string(query.size()));
      for (size_t d = 0; d < dim_; ++d)
        if (!std::isfinite(query.data()[d])) throw py::value_error("user_vector: holds NaN or infinite values");
      request.user_vector = query.data();
    }
    std::vector<rerank::Filter> filters;
    for (const py::handle item : conditions) {
      const auto pair = item.cast<py::tuple>();
      const auto name = pair[0].cast<std::string>();
      const auto at = attribute_of_.find(name);
      if (at == attribute_of_.end()) throw py::value_error("filters: unknown attribute '" + name + "'");
      const auto values = require_array<int64_t>(pair[1], "filter values", 1);
      filters.emplace_back(at->second, std::vector<int64_t>(values.data(), values.data() + values.size()));
    }
    request.filters = &filters;
    const auto r = require_array<int64_t>(recent, "recent", 1);
    request.recent = r.data();
    request.n_recent = size_t(r.size());
    return merged_arrays([&] { return core_->run(request); });
  }

 private:
  size_t required_attribute(const char* name) const {
    const auto at = attribute_of_.find(name);
    if (at == attribute_of_.end()) throw py::value_error(std::string("attributes: '") + name + "' is required");
    return at->second;
  }

  const int64_t* held_rows(const py::handle& obj, const std::string& what) {
    auto a = require_array<int64_t>(obj, what.c_str(), 1);
    alive_.push_back(a);
    return a.data();
  }

  rerank::SourceLists source_lists(const py::dict& lists, const char* source) {
    const auto entry = lists[source].cast<py::tuple>();
    auto all = require_array<int64_t>(entry[0], "lists", 1);
    alive_.push_back(all);
    rerank::SourceLists out{all.data(), size_t(all.size()), {}, {}};
    const auto scoped = entry[1].cast<py::dict>();
    for (const char* scope : {"merchant_id", "category_id"}) {
      const auto csr = scoped[scope].cast<py::tuple>();
      const std::string what = std::string("lists['") + source + "']['" + scope + "']";
      auto keys = require_array<int64_t>(csr[0], what.c_str(), 1);
      auto offsets = require_array<int64_t>(csr[1], what.c_str(), 1);
      if (offsets.size() != keys.size() + 1) throw py::value_error(what + ": expected one more offset than keys");
      alive_.push_back(keys);
      alive_.push_back(offsets);
      const rerank::ScopedLists lists_of{keys.data(), size_t(keys.size()), offsets.data(), held_rows(csr[2], what)};
      (std::string(scope) == "merchant_id" ? out.by_merchant : out.by_category) = lists_of;
    }
    return out;
  }

  py::object index_;                 // the _core.Index searched (its lifetime covers core_'s reference)
  std::vector<py::object> alive_;    // every array core_ reads
  std::unordered_map<std::string, size_t> attribute_of_;
  size_t dim_ = 0;
  std::unique_ptr<rerank::CandidateStage> core_;
};

}  // namespace

void bind_candidate_stage(py::module_& m) {
  py::class_<PyCandidateStage>(m, "CandidateStage",
                               "A request's ANN search, popular and new-item lists and merge "
                               "(cpp/rerank/candidate_stage.hpp).")
      .def(py::init<py::object, const py::dict&, const py::dict&, const py::object&, const py::object&, size_t>(),
           py::arg("index"), py::arg("lists"), py::arg("attributes"), py::arg("vectors"), py::arg("vector_rows"),
           py::arg("n_items"))
      .def("run", &PyCandidateStage::run, py::arg("user_vector"), py::arg("n_ann"), py::arg("conditions"),
           py::arg("nprobe"), py::arg("n_popular"), py::arg("n_new"), py::arg("recent"),
           "(rows int64, source code int8, retrieval score float32): the request's candidates, as "
           "tests/pipeline_support.py's candidates_step_by_step gives them. conditions: "
           "[(attribute, int64 values)].");
}

}  // namespace engine::bind
