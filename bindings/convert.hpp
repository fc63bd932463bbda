// Argument checks shared by the bindings. The Python layer converts what may
// be converted; here a wrong dtype or layout is a TypeError, never a silent
// reinterpretation.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include "common/array.hpp"

namespace engine::bind {

namespace py = pybind11;

template <typename T>
py::array_t<T> require_array(const py::handle& obj, const char* name, int ndim) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(arr.dtype())));
  if (arr.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) +
                          "-D array, got " + std::to_string(arr.ndim()) + "-D");
  if (!(arr.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + ": expected a C-contiguous array");
  return py::reinterpret_borrow<py::array_t<T>>(arr);
}

// Keeps a Python object alive from C++ without holding the GIL elsewhere:
// the last reference is dropped with the GIL taken.
inline std::shared_ptr<const void> keep_alive(py::object obj) {
  auto* held = new py::object(std::move(obj));
  return std::shared_ptr<const void>(held, [](const void* p) {
    py::gil_scoped_acquire gil;
    delete static_cast<const py::object*>(p);
  });
}

// A borrowed view of a numpy array as an engine::Array (zero copy).
template <typename T>
Array<T> borrow(const py::handle& obj, const char* name) {
  auto arr = require_array<T>(obj, name, 1);
  const T* data = arr.data();
  const size_t size = size_t(arr.size());
  return Array<T>(data, size, keep_alive(arr));
}

// A read-only numpy view of an engine::Array that keeps its owner alive
// (the array belongs to an immutable object, so writing to it is refused).
template <typename T>
py::array_t<T> to_numpy(const Array<T>& a, std::shared_ptr<const void> owner) {
  auto* holder = new std::shared_ptr<const void>(std::move(owner));
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
  py::array_t<T> view({py::ssize_t(a.size())}, {py::ssize_t(sizeof(T))}, a.data(), base);
  py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return view;
}

}  // namespace engine::bind
