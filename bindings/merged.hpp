// A request's merged candidates (rerank::Merged) back to Python, shared by
// merge_candidates and CandidateStage: the merge runs without the GIL, its
// refusals become ValueError, the result (rows, source, score) arrays.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "rerank/merge.hpp"

namespace engine::bind {

template <class Merge>
pybind11::tuple merged_arrays(Merge&& merge) {
  namespace py = pybind11;
  rerank::Merged m;
  try {
    py::gil_scoped_release release;
    m = merge();
  } catch (const std::out_of_range& e) {
    throw py::value_error(e.what());
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  const auto n = py::ssize_t(m.rows.size());
  return py::make_tuple(py::array_t<int64_t>(n, m.rows.data()), py::array_t<int8_t>(n, m.source.data()),
                        py::array_t<float>(n, m.score.data()));
}

}  // namespace engine::bind
