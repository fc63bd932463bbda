// Getting the Arrow C Data Interface structs out of the PyCapsule protocol,
// shared by every binding that takes Arrow input (arrow.cpp, features.cpp).
//
// The array protocol wins when both exist: one array needs no stream
// machinery and stays zero copy. No requested_schema: we take what the
// producer has and refuse what we cannot read, rather than ask for a cast.
#pragma once
#include <pybind11/pybind11.h>

#include <string>

#include "arrow/c_data.hpp"

namespace engine::bind {

namespace py = pybind11;

struct Exported {
  py::object owner;  // the capsules: keeps the structs below valid
  const ArrowSchema* schema = nullptr;  // __arrow_c_array__
  const ArrowArray* array = nullptr;
  ArrowArrayStream* stream = nullptr;   // __arrow_c_stream__
};

template <typename T>
T* capsule_pointer(const py::handle& capsule, const char* name) {
  if (!PyCapsule_IsValid(capsule.ptr(), name))
    throw py::type_error(std::string("the Arrow PyCapsule protocol must give a capsule named '") +
                         name + "'");
  void* pointer = PyCapsule_GetPointer(capsule.ptr(), name);
  if (pointer == nullptr) throw py::error_already_set();
  return static_cast<T*>(pointer);
}

// `what` names the argument in the error for an object that is not Arrow.
inline Exported export_arrow(const py::handle& obj, const char* what = nullptr) {
  Exported out;
  if (py::hasattr(obj, "__arrow_c_array__")) {
    py::object result = obj.attr("__arrow_c_array__")();
    if (!py::isinstance<py::tuple>(result) || py::len(result) != 2)
      throw py::type_error("__arrow_c_array__ must return a (schema, array) pair of capsules");
    auto pair = py::reinterpret_steal<py::tuple>(result.release());
    out.schema = capsule_pointer<ArrowSchema>(pair[0], "arrow_schema");
    out.array = capsule_pointer<ArrowArray>(pair[1], "arrow_array");
    out.owner = std::move(pair);
  } else if (py::hasattr(obj, "__arrow_c_stream__")) {
    py::object capsule = obj.attr("__arrow_c_stream__")();
    out.stream = capsule_pointer<ArrowArrayStream>(capsule, "arrow_array_stream");
    out.owner = std::move(capsule);
  } else {
    throw py::type_error(
        (what ? std::string(what) + ": expected" : std::string("expected")) +
        " an Arrow array, record batch, table or stream (an object with __arrow_c_array__ or "
        "__arrow_c_stream__: pyarrow, polars, ...), got " +
        std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  return out;
}

}  // namespace engine::bind
