// engine._core: the pybind11 module. Each file in bindings/ binds one part of
// the core; this one registers them and maps core errors to Python ones.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/errors.hpp"
#include "simd/dispatch.hpp"
#include "trees/eval.hpp"

namespace py = pybind11;

namespace engine::bind {
void bind_kernels(py::module_& m);
void bind_index(py::module_& m);
void bind_arrow(py::module_& m);
void bind_forest(py::module_& m);
void bind_rerank(py::module_& m);
void bind_scorer(py::module_& m);
void bind_candidate_stage(py::module_& m);
void bind_features(py::module_& m);
void bind_id_map(py::module_& m);
void bind_impressions(py::module_& m);
}  // namespace engine::bind

#ifndef ENGINE_VERSION
#define ENGINE_VERSION "unknown"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "rank-engine native core";
  static py::exception<engine::FormatError> format_error(m, "FormatError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const engine::FormatError& e) {
      py::set_error(format_error, e.what());
    } catch (const engine::TypeError& e) {
      py::set_error(PyExc_TypeError, e.what());
    } catch (const engine::ValueError& e) {
      py::set_error(PyExc_ValueError, e.what());
    }
  });

  m.def("build_info", [] {
    py::dict info;
    info["simd"] = engine::simd::level_name(engine::simd::active().level);
    info["kernels"] = engine::simd::active().name;
    info["forest_kernels"] = engine::trees::active_eval().name;  // avx512-vbmi: the binned walk
    info["simd_supported"] = engine::simd::supported_level_names();
    info["compiler"] = std::string(__VERSION__);
    info["version"] = ENGINE_VERSION;
    return info;
  }, "The instruction-set level in use, the levels this CPU supports, compiler and version.");

  engine::bind::bind_kernels(m);
  engine::bind::bind_index(m);
  engine::bind::bind_arrow(m);
  engine::bind::bind_forest(m);
  engine::bind::bind_rerank(m);
  engine::bind::bind_scorer(m);
  engine::bind::bind_candidate_stage(m);
  engine::bind::bind_features(m);
  engine::bind::bind_id_map(m);
  engine::bind::bind_impressions(m);
}
