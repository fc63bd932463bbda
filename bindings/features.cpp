// engine._core.FeatureAssembler: the spec's features (as tuples from
// engine/features/assembler.py) and an Arrow item table in, an immutable
// native assembler out. The request dict is encoded here with the C API,
// one dict lookup per field the spec reads (the field list is fixed at
// construction), so an online call runs no Python per field or per row.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "arrow/stream.hpp"
#include "bindings/arrow_capsules.hpp"
#include "bindings/convert.hpp"
#include "features/assembler.hpp"
#include "features/hash.hpp"

namespace engine::bind {

namespace py = pybind11;
using features::Assembler;
using features::FeatureDef;
using features::Input;
using features::RequestValues;

namespace {

// Below this many output values a call is a few microseconds at most: the
// GIL is kept rather than released and re-taken.
constexpr size_t kReleaseGilValues = 4096;

// ---- Arrow capsules (as bindings/arrow.cpp takes them) ---------------------

struct ArrowInput {
  py::object owner;  // the capsules
  arrow::StreamChunks stream;
  const ArrowSchema* schema = nullptr;
  std::vector<const ArrowArray*> chunks;
};

// A record batch (__arrow_c_array__) is one chunk; a table, data frame or
// reader (__arrow_c_stream__) is read to its end, with the GIL held.
std::unique_ptr<ArrowInput> arrow_input(const py::handle& obj, const char* what) {
  auto in = std::make_unique<ArrowInput>();
  Exported e = export_arrow(obj, what);
  in->owner = std::move(e.owner);
  in->schema = e.schema;
  if (e.array) {
    in->chunks.push_back(e.array);
  } else {
    in->stream = arrow::read_stream(*e.stream);
    in->schema = in->stream.schema.operator->();
    for (auto& chunk : in->stream.chunks) in->chunks.push_back(chunk.get());
  }
  return in;
}

// ---- the spec --------------------------------------------------------------

features::Kind parse_kind(const std::string& kind) {
  static const std::pair<const char*, features::Kind> kinds[] = {
      {"numeric", features::Kind::numeric}, {"bucket", features::Kind::bucket},
      {"hashed", features::Kind::hashed},   {"cross", features::Kind::cross},
      {"dot", features::Kind::dot},         {"lookup", features::Kind::lookup},
      {"match", features::Kind::match}};
  for (const auto& [name, k] : kinds)
    if (kind == name) return k;
  throw py::value_error("features: unknown kind '" + kind + "'");
}

// (kind, name, [(origin, name), ...], buckets, boundaries, default)
FeatureDef parse_feature(const py::handle& item) {
  auto t = item.cast<py::tuple>();
  if (t.size() != 6) throw py::value_error("features: expected 6-tuples");
  FeatureDef def;
  def.kind = parse_kind(t[0].cast<std::string>());
  def.name = t[1].cast<std::string>();
  for (const auto& s : t[2].cast<py::list>()) {
    auto pair = s.cast<py::tuple>();
    const auto origin = pair[0].cast<std::string>();
    if (origin != "item" && origin != "request")
      throw py::value_error("features: unknown source origin '" + origin + "'");
    def.sources.push_back({origin == "item" ? features::Origin::item : features::Origin::request,
                           pair[1].cast<std::string>()});
  }
  def.buckets = t[3].cast<uint64_t>();
  def.boundaries = t[4].cast<std::vector<double>>();
  def.fallback = float(t[5].cast<double>());
  return def;
}

// ---- the request -----------------------------------------------------------

std::string type_name(PyObject* v) { return Py_TYPE(v)->tp_name; }

class PyAssembler {
 public:
  PyAssembler(const py::list& feature_list, const py::handle& items, const py::object& item_vectors,
              const py::object& vector_rows) {
    std::vector<FeatureDef> defs;
    for (const auto& f : feature_list) defs.push_back(parse_feature(f));
    auto table = arrow_input(items, "items");
    const float* vectors = nullptr;
    int64_t n_vectors = 0, dim = 0;
    py::array_t<float> held;
    std::shared_ptr<const void> owner;
    if (!item_vectors.is_none()) {
      held = require_array<float>(item_vectors, "item_vectors", 2);
      vectors = held.data();
      n_vectors = held.shape(0);
      dim = held.shape(1);
      // Read-only arrays (a bundle's memory map, an index's vectors) are
      // borrowed; writeable ones copied, so later writes cannot change rows.
      if (!held.writeable()) owner = keep_alive(held);
    }
    py::array_t<int32_t> slots;  // held to the end of construction, which copies it
    const int32_t* slot_data = nullptr;
    if (!vector_rows.is_none()) {
      slots = require_array<int32_t>(vector_rows, "vector_rows", 1);
      slot_data = slots.data();
    }
    {
      py::gil_scoped_release nogil;  // the item store is copied here: O(items x columns)
      core_ = std::make_shared<const Assembler>(std::move(defs), *table->schema, table->chunks, vectors,
                                               n_vectors, dim, std::move(owner),
                                               slot_data, slot_data ? slots.size() : 0);
    }
    for (const Input& in : core_->plan().request_fields()) field_keys_.push_back(intern(in.name));
    user_vector_key_ = intern("user_vector");
    py::module_ np = py::module_::import("numpy");
    np_bool_ = np.attr("bool_");
    np_integer_ = np.attr("integer");
    np_floating_ = np.attr("floating");
    np_number_ = np.attr("number");
  }

  const Assembler& core() const { return *core_; }

  py::array_t<float> assemble(const py::handle& rows_obj, const py::handle& request,
                              const py::handle& out_obj) const {
    auto rows = require_array<int64_t>(rows_obj, "rows", 1);
    if (!PyDict_Check(request.ptr()))
      throw py::type_error("request: expected a dict, got " + type_name(request.ptr()));
    RequestValues values(core_->plan());
    py::object user_vector = encode(request.ptr(), values);
    const size_t n = size_t(rows.shape(0));
    const size_t width = core_->n_features();
    py::array_t<float> out;
    if (out_obj.is_none()) {
      out = py::array_t<float>({py::ssize_t(n), py::ssize_t(width)});
    } else {
      out = require_array<float>(out_obj, "out", 2);
      if (size_t(out.shape(0)) != n || size_t(out.shape(1)) != width)
        throw py::value_error("out: expected shape (" + std::to_string(n) + ", " +
                              std::to_string(width) + "), got (" + std::to_string(out.shape(0)) +
                              ", " + std::to_string(out.shape(1)) + ")");
      if (!out.writeable()) throw py::value_error("out: the array is read-only");
    }
    const int64_t* r = rows.data();
    float* o = out.mutable_data();
    if (n * width >= kReleaseGilValues) {
      py::gil_scoped_release nogil;
      core_->assemble(r, n, values, o);
    } else {
      core_->assemble(r, n, values, o);
    }
    return out;
  }

  py::array_t<float> assemble_offline(const py::handle& table_obj, int threads) const {
    if (threads < 1) throw py::value_error("threads: expected an integer >= 1");
    auto table = arrow_input(table_obj, "table");
    features::OfflineTable prepared;
    {
      py::gil_scoped_release nogil;  // offsets are checked row by row
      prepared = core_->prepare_offline(*table->schema, table->chunks);
    }
    py::array_t<float> out({py::ssize_t(prepared.rows), py::ssize_t(core_->n_features())});
    float* o = out.mutable_data();
    {
      py::gil_scoped_release nogil;
      core_->assemble_offline(prepared, threads, o);
    }
    return out;
  }

 private:
  static py::object intern(const std::string& s) {
    PyObject* str = PyUnicode_FromStringAndSize(s.data(), py::ssize_t(s.size()));
    if (str == nullptr) throw py::error_already_set();
    PyUnicode_InternInPlace(&str);
    return py::reinterpret_steal<py::object>(str);
  }

  bool is_instance(PyObject* v, const py::object& type) const {
    const int r = PyObject_IsInstance(v, type.ptr());
    if (r < 0) throw py::error_already_set();
    return r == 1;
  }

  static std::string where(const Input& field) { return "request['" + field.name + "']"; }

  // A Python int as a 64-bit category code: [-2**63, 2**64) as its
  // two's-complement pattern, like an int64 / uint64 Arrow column.
  // `field` names the argument in errors; messages are built only on failure.
  static uint64_t int_code(PyObject* v, const Input& field) {
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow == 0) return uint64_t(value);
    if (overflow > 0) {
      const unsigned long long u = PyLong_AsUnsignedLongLong(v);
      if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) return u;
      PyErr_Clear();
    }
    throw py::value_error(where(field) + ": " + std::string(py::str(v)) + " does not fit in 64 bits");
  }

  static double int_number(PyObject* v, const Input& field) {
    const double d = PyLong_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(where(field) + ": the integer is too large for a float");
    }
    return d;
  }

  void encode_scalar(const Input& field, PyObject* v, RequestValues& values) const {
    const bool number = field.number_slot >= 0, code = field.code_slot >= 0;
    py::object index;  // a numpy integer converted to a Python int
    if (PyBool_Check(v) || (!PyLong_Check(v) && !PyFloat_Check(v) && is_instance(v, np_bool_))) {
      const bool b = PyObject_IsTrue(v) == 1;
      if (number) values.set_number(field, b ? 1.0 : 0.0);
      if (code) values.set_code(field, b ? 1 : 0);
      return;
    }
    if (!PyLong_Check(v) && is_instance(v, np_integer_)) {
      index = py::reinterpret_steal<py::object>(PyNumber_Index(v));
      if (!index) throw py::error_already_set();
      v = index.ptr();
    }
    if (PyLong_Check(v)) {
      if (number) values.set_number(field, int_number(v, field));
      if (code) values.set_code(field, int_code(v, field));
      return;
    }
    if (PyFloat_Check(v) || is_instance(v, np_floating_)) {
      if (code)
        throw py::type_error(where(field) + ": " + field.code_user +
                             " needs an int, str or bool category, got " + type_name(v));
      const double d = PyFloat_AsDouble(v);
      if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
      values.set_number(field, d);
      return;
    }
    if (PyUnicode_Check(v)) {
      if (number)
        throw py::type_error(where(field) + ": " + field.number_user + " needs a number, got str");
      Py_ssize_t size = 0;
      const char* utf8 = PyUnicode_AsUTF8AndSize(v, &size);
      if (utf8 == nullptr) throw py::error_already_set();
      values.set_code(field, features::fnv1a64(utf8, size_t(size)));
      return;
    }
    const std::string& user = number ? field.number_user : field.code_user;
    throw py::type_error(where(field) + ": " + user + " needs " +
                         (number && !code ? "a number (int, float or bool)"
                          : code && !number ? "a category (int, str or bool)"
                                            : "an int or bool") +
                         ", got " + type_name(v));
  }

  void encode_map(const Input& field, PyObject* v, RequestValues& values) const {
    if (!PyDict_Check(v))
      throw py::type_error(where(field) + ": " + field.map_user +
                           " needs a dict {int: float}, got " + type_name(v));
    const Py_ssize_t size = PyDict_Size(v);
    std::vector<int64_t> keys;
    std::vector<double> numbers;
    keys.reserve(size_t(size));
    numbers.reserve(size_t(size));
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(v, &pos, &key, &value)) {
      py::object index;
      if (!PyLong_Check(key)) {
        if (!is_instance(key, np_integer_) && !is_instance(key, np_bool_))
          throw py::type_error(where(field) + ": keys must be int, got " + type_name(key));
        index = py::reinterpret_steal<py::object>(PyNumber_Index(key));
        if (!index) {
          PyErr_Clear();
          index = py::reinterpret_steal<py::object>(PyLong_FromLong(PyObject_IsTrue(key)));
        }
        key = index.ptr();
      }
      keys.push_back(int64_t(int_code(key, field)));
      double d;
      if (value == Py_None) {
        d = std::numeric_limits<double>::quiet_NaN();
      } else if (PyFloat_Check(value)) {
        d = PyFloat_AS_DOUBLE(value);
      } else if (PyLong_Check(value)) {
        d = int_number(value, field);
      } else if (is_instance(value, np_number_) || is_instance(value, np_bool_)) {
        d = PyFloat_AsDouble(value);
        if (d == -1.0 && PyErr_Occurred()) throw py::error_already_set();
      } else {
        throw py::type_error(where(field) + ": values must be numbers, got " + type_name(value));
      }
      numbers.push_back(d);
    }
    values.set_map(field, std::move(keys), std::move(numbers));
  }

  // Fills `values` from the request dict; returns what keeps the user vector alive.
  py::object encode(PyObject* request, RequestValues& values) const {
    const auto& fields = core_->plan().request_fields();
    for (size_t f = 0; f < fields.size(); ++f) {
      PyObject* v = PyDict_GetItemWithError(request, field_keys_[f].ptr());
      if (v == nullptr) {
        if (PyErr_Occurred()) throw py::error_already_set();
        continue;  // missing
      }
      if (v == Py_None) continue;
      if (fields[f].map_index >= 0) encode_map(fields[f], v, values);
      else encode_scalar(fields[f], v, values);
    }
    if (!core_->plan().has_dot) return py::object();
    PyObject* v = PyDict_GetItemWithError(request, user_vector_key_.ptr());
    if (v == nullptr && PyErr_Occurred()) throw py::error_already_set();
    if (v == nullptr || v == Py_None) return py::object();
    const int64_t dim = core_->dim();
    if (!py::isinstance<py::array>(v))
      throw py::type_error("request['user_vector']: expected a float32 numpy array of " +
                           std::to_string(dim) + " values, got " + type_name(v));
    auto arr = py::reinterpret_borrow<py::array>(v);
    if (arr.dtype().kind() != 'f')
      throw py::type_error("request['user_vector']: expected floating-point values, got dtype " +
                           std::string(py::str(arr.dtype())));
    if (arr.ndim() != 1 || arr.shape(0) != dim)
      throw py::value_error("request['user_vector']: expected shape (" + std::to_string(dim) +
                            ",), got " + std::string(py::str(py::handle(v).attr("shape"))));
    auto f32 = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(arr);
    if (!f32) throw py::error_already_set();
    values.set_user_vector(f32.data());
    return std::move(f32);
  }

  std::shared_ptr<const Assembler> core_;
  std::vector<py::object> field_keys_;
  py::object user_vector_key_;
  py::object np_bool_, np_integer_, np_floating_, np_number_;
};

std::vector<std::string> input_names(const std::vector<Input>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs) out.push_back(in.name);
  return out;
}

}  // namespace

void bind_features(py::module_& m) {
  py::class_<PyAssembler>(m, "FeatureAssembler")
      .def(py::init<const py::list&, const py::handle&, const py::object&, const py::object&>(),
           py::arg("features"), py::arg("items"), py::arg("item_vectors"), py::arg("vector_rows") = py::none())
      .def("assemble", &PyAssembler::assemble, py::arg("rows"), py::arg("request"), py::arg("out"))
      .def("assemble_offline", &PyAssembler::assemble_offline, py::arg("table"), py::arg("threads"))
      .def_property_readonly("names", [](const PyAssembler& a) { return a.core().plan().names; })
      .def_property_readonly("n_features", [](const PyAssembler& a) { return a.core().n_features(); })
      .def_property_readonly("n_items", [](const PyAssembler& a) { return a.core().n_items(); })
      .def_property_readonly("dim", [](const PyAssembler& a) { return a.core().dim(); })
      .def_property_readonly("item_columns",
                             [](const PyAssembler& a) { return input_names(a.core().plan().item_columns()); })
      .def_property_readonly("request_fields", [](const PyAssembler& a) {
        return input_names(a.core().plan().request_fields());
      });
}

}  // namespace engine::bind
