// engine._core.ImpressionColumns: the impression log's staging buffer
// (cpp/impressions/staging.hpp). append() checks one record's arrays, with
// errors naming the field, and copies it in; take() and to_arrays() hand the
// writer thread whole batches as numpy arrays, built without the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "impressions/columns.hpp"
#include "impressions/staging.hpp"

namespace engine::bind {

namespace py = pybind11;
using impressions::Columns;
using impressions::RecordView;

namespace {

std::string shape_of(const py::array& a) { return py::str(a.attr("shape")); }

// The field's name for a message: `name`, or name[repr(key)] for a component.
struct Name {
  const char* name;
  py::handle key = {};
  std::string str() const { return key ? std::string(name) + "[" + std::string(py::repr(key)) + "]" : name; }
};

// A numpy array of one of `kinds` and `ndim` dimensions as a C-contiguous
// array of T (cast or copied only when it is not one already).
template <typename T>
py::array_t<T> field(const py::handle& obj, Name name, const char* kinds, int ndim) {
  using Exact = py::array_t<T, py::array::c_style>;
  if (Exact::check_(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == ndim)
    return py::reinterpret_borrow<py::array_t<T>>(obj);  // the usual case: nothing to convert
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(name.str() + ": expected a numpy array, got " +
                         std::string(py::str(obj.get_type().attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != ndim)
    throw py::value_error(name.str() + ": expected a " + std::to_string(ndim) + "-D array, got shape " + shape_of(a));
  if (!std::strchr(kinds, a.dtype().kind()))
    throw py::type_error(name.str() + ": expected " + std::string(py::str(py::dtype::of<T>())) + ", got dtype " +
                         std::string(py::str(a.dtype())));
  return py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
}

template <typename T>
py::array_t<T> per_item(const py::handle& obj, Name name, const char* kinds, size_t n) {
  auto a = field<T>(obj, name, kinds, 1);
  if (size_t(a.size()) != n)
    throw py::value_error(name.str() + ": length " + std::to_string(a.size()) + ", but item_ids has " +
                          std::to_string(n) + " items");
  return a;
}

const double* probabilities(const py::handle& obj, const char* name, size_t n, std::vector<py::object>& held) {
  if (obj.is_none()) return nullptr;
  auto a = per_item<double>(obj, {name}, "f", n);
  const double* p = a.data();
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += !(p[i] >= 0.0 && p[i] <= 1.0);  // NaN fails both
  if (bad)
    throw py::value_error(std::string(name) + ": " + std::to_string(bad) + " of " + std::to_string(n) +
                          " values are NaN or outside [0, 1]");
  held.push_back(a);
  return p;
}

std::string_view bytes_view(const py::handle& obj, const char* name) {
  if (!PyBytes_Check(obj.ptr())) throw py::type_error(std::string(name) + ": expected bytes");
  return {PyBytes_AS_STRING(obj.ptr()), size_t(PyBytes_GET_SIZE(obj.ptr()))};
}

// item_ids of any integer dtype, none negative.
py::array_t<uint64_t> item_ids_of(const py::handle& obj) {
  auto a = py::reinterpret_borrow<py::object>(obj);
  if (py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).dtype().kind() == 'i') {
    auto s = field<int64_t>(obj, {"item_ids"}, "i", 1);
    const int64_t* p = s.data();
    for (py::ssize_t i = 0; i < s.size(); ++i)
      if (p[i] < 0) throw py::value_error("item_ids: negative id");
    a = s;  // the same bits as uint64
  }
  return field<uint64_t>(a, {"item_ids"}, "iu", 1);
}

// positions of any integer dtype with values in [0, 2**31).
py::array_t<int32_t> positions_of(const py::handle& obj, size_t n) {
  if (!py::isinstance<py::array>(obj) || py::reinterpret_borrow<py::array>(obj).ndim() != 1 ||
      !std::strchr("iu", py::reinterpret_borrow<py::array>(obj).dtype().kind())) {
    std::string got = py::isinstance<py::array>(obj)
                          ? "dtype " + std::string(py::str(py::reinterpret_borrow<py::array>(obj).dtype())) +
                                ", shape " + shape_of(py::reinterpret_borrow<py::array>(obj))
                          : std::string(py::str(obj.get_type().attr("__name__")));
    throw py::type_error("positions: expected a 1-D int32 array, got " + got);
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (size_t(a.size()) != n)
    throw py::value_error("positions: length " + std::to_string(a.size()) + ", but item_ids has " +
                          std::to_string(n) + " items");
  const char* range = "positions: values must lie in [0, 2**31)";
  if (py::array_t<int32_t, py::array::c_style>::check_(a)) {  // the usual case
    auto p = py::reinterpret_borrow<py::array_t<int32_t>>(a);
    for (py::ssize_t i = 0; i < p.size(); ++i)
      if (p.data()[i] < 0) throw py::value_error(range);
    return p;
  }
  // Other integer dtypes through int64 (uint64 values past 2**63 wrap to negatives).
  auto wide = field<int64_t>(a, {"positions"}, "iu", 1);
  for (py::ssize_t i = 0; i < wide.size(); ++i)
    if (wide.data()[i] < 0 || wide.data()[i] > INT32_MAX) throw py::value_error(range);
  return field<int32_t>(a, {"positions"}, "iu", 1);
}

// The queue shared by the request threads (append) and the writer (take);
// `home` is the queue a taken batch came from, which gets its segments back.
struct Queue : std::enable_shared_from_this<Queue> {
  std::mutex mutex;
  impressions::Staging staging;
  std::weak_ptr<Queue> home;

  std::weak_ptr<Queue> origin() { return home.expired() ? weak_from_this() : home; }
  void recycle(std::vector<Columns>& used) {
    std::lock_guard lock(mutex);
    for (Columns& c : used) staging.recycle(std::move(c));
  }
};

void append(Queue& queue, const py::bytes& request_id, int64_t timestamp_us, const py::object& user_id,
            const py::bytes& surface, const py::bytes& context, const py::object& user_vector,
            const py::object& item_ids, const py::object& positions, const py::object& value,
            const py::object& components, const py::object& features, int32_t names_slot, int64_t names_count,
            const py::object& propensities, const py::object& choice_probabilities,
            const py::bytes& bundle_version, const py::bytes& model_versions) {
  RecordView r;
  std::vector<py::object> held;  // arrays cast or copied for this call
  r.request_id = bytes_view(request_id, "request_id");
  r.surface = bytes_view(surface, "surface");
  r.context = bytes_view(context, "context");
  r.bundle_version = bytes_view(bundle_version, "bundle_version");
  r.model_versions = bytes_view(model_versions, "model_versions");
  r.timestamp_us = timestamp_us;
  if (!user_id.is_none()) {
    r.has_user_id = true;
    r.user_id = user_id.cast<uint64_t>();
  }

  auto ids = item_ids_of(item_ids);
  r.n = size_t(ids.size());
  r.item_ids = ids.data();
  auto pos = positions_of(positions, r.n);
  r.positions = pos.data();
  auto val = per_item<float>(value, {"value"}, "f", r.n);
  r.value = val.data();
  auto feats = field<float>(features, {"features"}, "f", 2);
  if (size_t(feats.shape(0)) != r.n)
    throw py::value_error("features: shape " + shape_of(feats) + ", but item_ids has " + std::to_string(r.n) +
                          " items");
  r.features = feats.data();
  r.n_features = size_t(feats.shape(1));
  if (!PyDict_Check(components.ptr())) throw py::type_error("components: expected dict");
  for (auto [key, array] : py::reinterpret_borrow<py::dict>(components)) {
    if (!PyUnicode_Check(key.ptr()))
      throw py::type_error("components: key " + std::string(py::repr(key)) + " is not a str");
    Py_ssize_t size = 0;
    const char* name = PyUnicode_AsUTF8AndSize(key.ptr(), &size);
    if (!name) throw py::error_already_set();
    auto a = per_item<float>(array, Name{"components", key}, "f", r.n);
    r.component_names.emplace_back(name, size_t(size));  // the key, alive in the dict, owns the UTF-8
    r.component_values.push_back(a.data());
    held.push_back(a);
  }
  if (names_count >= 0 && size_t(names_count) != r.n_features)
    throw py::value_error("feature_names: " + std::to_string(names_count) + " names for " +
                          std::to_string(r.n_features) + " feature columns");
  r.names_slot = names_slot;
  if (!user_vector.is_none()) {
    auto uv = field<float>(user_vector, {"user_vector"}, "f", 1);
    r.user_vector = uv.data();
    r.user_vector_size = size_t(uv.size());
    held.push_back(uv);
  }
  r.propensities = probabilities(propensities, "propensities", r.n, held);
  r.choice_probabilities = probabilities(choice_probabilities, "choice_probabilities", r.n, held);

  std::lock_guard lock(queue.mutex);  // a copy of a few KB: not worth giving up the GIL
  queue.staging.append(r);
}

// Numpy arrays over a taken batch, which they keep alive; offsets as int32.
struct Exported {
  Columns columns;
  std::deque<std::vector<int32_t>> offsets;  // a deque: the views point into its elements
  std::weak_ptr<Queue> home;
  ~Exported() {
    std::vector<Columns> used(1);
    used[0] = std::move(columns);
    if (auto queue = home.lock()) queue->recycle(used);
  }
};

template <typename T>
py::array view(const std::shared_ptr<Exported>& owner, const T* data, size_t n) {
  auto* holder = new std::shared_ptr<Exported>(owner);
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<Exported>*>(p); });
  return py::array_t<T>({py::ssize_t(n)}, {py::ssize_t(sizeof(T))}, data, base);
}

py::dict to_arrays(Queue& queue) {
  auto owner = std::make_shared<Exported>();
  {
    std::vector<Columns> emptied;
    py::gil_scoped_release release;  // a batch of several segments is copied into one
    {
      std::lock_guard lock(queue.mutex);
      owner->columns = queue.staging.concatenate(emptied);
    }
    auto home = queue.origin();
    if (auto queue_home = home.lock()) queue_home->recycle(emptied);
    // A lone segment goes back when the arrays are freed; a batch-sized copy
    // is freed (as a spare it would hold a batch's memory for 64 records).
    if (emptied.empty()) owner->home = home;
  }
  Columns& c = owner->columns;
  py::dict out;
  auto offsets = [&](const char* key, const std::vector<int64_t>& o) {
    if (o.back() > INT32_MAX)
      throw py::value_error(std::string(key) + ": a batch of more than 2**31 - 1 values; take fewer records");
    owner->offsets.emplace_back(o.begin(), o.end());
    const auto& o32 = owner->offsets.back();
    out[key] = view(owner, o32.data(), o32.size());
  };
  auto strings = [&](const std::string& key, const impressions::StringColumn& s) {
    offsets((key + ".offsets").c_str(), s.offsets);
    out[py::str(key + ".data")] = view(owner, reinterpret_cast<const uint8_t*>(s.data.data()), s.data.size());
  };
  auto lists = [&](const std::string& key, const auto& l) {
    offsets((key + ".offsets").c_str(), l.offsets);
    out[py::str(key + ".values")] = view(owner, l.values.data(), l.values.size());
    out[py::str(key + ".valid")] = view(owner, l.valid.data(), l.valid.size());
  };
  strings("request_id", c.request_id);
  strings("surface", c.surface);
  strings("context", c.context);
  strings("bundle_version", c.bundle_version);
  strings("model_versions", c.model_versions);
  out["timestamp_us"] = view(owner, c.timestamp_us.data(), c.timestamp_us.size());
  out["user_id"] = view(owner, c.user_id.data(), c.user_id.size());
  out["user_id.valid"] = view(owner, c.user_id_valid.data(), c.user_id_valid.size());
  lists("user_vector", c.user_vector);
  offsets("items.offsets", c.item_offsets);
  out["item_ids"] = view(owner, c.item_ids.data(), c.item_ids.size());
  out["positions"] = view(owner, c.positions.data(), c.positions.size());
  out["value"] = view(owner, c.value.data(), c.value.size());
  offsets("components.offsets", c.component_offsets);
  strings("components.names", c.component_names);
  lists("components.values", c.component_values);
  out["n_features"] = view(owner, c.n_features.data(), c.n_features.size());
  lists("features", c.features);
  out["names_slot"] = view(owner, c.names_slot.data(), c.names_slot.size());
  lists("propensities", c.propensities);
  lists("choice_probabilities", c.choice_probabilities);
  return out;
}

}  // namespace

void bind_impressions(py::module_& m) {
  py::class_<Queue, std::shared_ptr<Queue>>(
      m, "ImpressionColumns",
      "Impression records in the log's Arrow layout (cpp/impressions/staging.hpp); safe to share between "
      "threads.")
      .def(py::init<>())
      .def("append", &append, py::arg("request_id"), py::arg("timestamp_us"), py::arg("user_id"),
           py::arg("surface"), py::arg("context"), py::arg("user_vector"), py::arg("item_ids"),
           py::arg("positions"), py::arg("value"), py::arg("components"), py::arg("features"),
           py::arg("names_slot"), py::arg("names_count"), py::arg("propensities"),
           py::arg("choice_probabilities"), py::arg("bundle_version"), py::arg("model_versions"),
           "Check one record's arrays (TypeError / ValueError naming the field) and copy it in. Strings "
           "come UTF-8 encoded, context and model_versions as JSON; names_count is -1 without names.")
      .def(
          "take",
          [](Queue& q, size_t max_records, size_t max_bytes) {
            auto taken = std::make_shared<Queue>();
            taken->home = q.origin();
            py::gil_scoped_release release;
            std::lock_guard lock(q.mutex);
            taken->staging = q.staging.take(max_records, max_bytes);
            return taken;
          },
          py::arg("max_records"), py::arg("max_bytes") = SIZE_MAX,
          "Move out the oldest records: at most max_records, within max_bytes (at least one).")
      .def("to_arrays", &to_arrays,
           "Move every record out as numpy arrays of the columns (this object is empty afterwards).")
      .def("__len__", [](Queue& q) { std::lock_guard lock(q.mutex); return q.staging.size(); })
      .def_property_readonly("nbytes", [](Queue& q) { std::lock_guard lock(q.mutex); return q.staging.nbytes(); });
}

}  // namespace engine::bind
