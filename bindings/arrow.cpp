// Arrow PyCapsule protocol -> numpy. The core (cpp/arrow/) validates the C
// structs and makes typed views; this file only gets the structs out of the
// capsules, decides zero copy or copy, and keeps the producer's memory alive
// for as long as a returned array points into it.
//
// Lifetimes: for __arrow_c_array__ the capsules themselves become the numpy
// base, so the structs are never moved and the capsules' destructors release
// them exactly once. A stream's chunks are owned by us (OwnedArray); a chunk
// that backs a zero-copy array moves into a capsule that is that array's base.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "arrow/stream.hpp"
#include "bindings/arrow_capsules.hpp"
#include "arrow/views.hpp"

namespace engine::bind {

namespace py = pybind11;
using arrow::ColumnView;
using arrow::MatrixView;
using arrow::OwnedArray;
using arrow::ValueType;

namespace {

// Copies this large give the GIL back to other threads while they run.
constexpr size_t kReleaseGilBytes = size_t{1} << 20;

// A stream chunk that backs a zero-copy array: the capsule's destructor
// (run by Python, GIL held) releases it.
py::object own(OwnedArray chunk) {
  auto* held = new OwnedArray(std::move(chunk));
  return py::capsule(held, [](void* p) { delete static_cast<OwnedArray*>(p); });
}

// ---- numpy arrays ----------------------------------------------------------

py::dtype dtype_of(ValueType type) {
  switch (type) {
    case ValueType::i8: return py::dtype::of<int8_t>();
    case ValueType::i16: return py::dtype::of<int16_t>();
    case ValueType::i32: return py::dtype::of<int32_t>();
    case ValueType::i64: return py::dtype::of<int64_t>();
    case ValueType::u8: return py::dtype::of<uint8_t>();
    case ValueType::u16: return py::dtype::of<uint16_t>();
    case ValueType::u32: return py::dtype::of<uint32_t>();
    case ValueType::u64: return py::dtype::of<uint64_t>();
    case ValueType::f32: return py::dtype::of<float>();
    case ValueType::f64: return py::dtype::of<double>();
    case ValueType::boolean: return py::dtype::of<bool>();
  }
  throw py::type_error("unknown Arrow value type");
}

// Zero copy needs a non-empty, naturally aligned buffer: the C++ kernels read
// through typed pointers, and Arrow only recommends (not requires) alignment.
bool aligned(const void* data, size_t width) {
  return data != nullptr && reinterpret_cast<uintptr_t>(data) % width == 0;
}

// Arrow memory is immutable and shared with the producer, so views are
// read-only; a caller that wants to write makes a copy (as with pyarrow's
// own to_numpy(zero_copy_only=True)).
py::array read_only_view(const py::dtype& dtype, py::array::ShapeContainer shape, const void* data,
                         py::handle base) {
  py::array out(dtype, std::move(shape), data, base);
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

template <typename Copy>
void copy_maybe_without_gil(size_t bytes, Copy&& copy) {
  if (bytes >= kReleaseGilBytes) {
    py::gil_scoped_release nogil;  // only raw buffers are touched inside
    copy();
  } else {
    copy();
  }
}

// One column from its chunks: a view of the only chunk when `owner` can keep
// it alive and the layout allows, else a concatenated copy.
py::array column_array(ValueType type, const std::vector<ColumnView>& parts, py::handle owner) {
  const size_t width = arrow::byte_width(type);
  if (parts.size() == 1 && owner && !parts[0].bit_packed() && parts[0].length > 0 &&
      aligned(parts[0].values, width))
    return read_only_view(dtype_of(type), {py::ssize_t(parts[0].length)}, parts[0].values, owner);

  int64_t total = 0;
  for (const auto& part : parts) total += part.length;
  py::array out(dtype_of(type), py::array::ShapeContainer{py::ssize_t(total)});
  auto* dst = static_cast<char*>(out.mutable_data());
  copy_maybe_without_gil(size_t(total) * width, [&] {
    for (const auto& part : parts) {
      arrow::copy_column(part, dst);
      dst += size_t(part.length) * width;
    }
  });
  return out;
}

py::array matrix_array(int64_t dim, const std::vector<MatrixView>& parts, py::handle owner) {
  if (parts.size() == 1 && owner && !parts[0].is_f64 && parts[0].rows * dim > 0 &&
      aligned(parts[0].data, sizeof(float)))
    return read_only_view(py::dtype::of<float>(), {py::ssize_t(parts[0].rows), py::ssize_t(dim)},
                          parts[0].data, owner);

  int64_t total = 0;
  for (const auto& part : parts) total += part.rows;
  py::array_t<float> out(py::array::ShapeContainer{py::ssize_t(total), py::ssize_t(dim)});
  float* dst = out.mutable_data();
  copy_maybe_without_gil(size_t(total) * size_t(dim) * sizeof(float), [&] {
    for (const auto& part : parts) {
      arrow::copy_matrix_f32(part, dst);
      dst += size_t(part.rows) * size_t(dim);
    }
  });
  return out;
}

// ---- the three entry points ------------------------------------------------

py::array arrow_matrix(const py::handle& obj) {
  Exported e = export_arrow(obj);
  if (e.array) {
    const MatrixView view = arrow::fixed_size_list_f32(*e.schema, *e.array);
    return matrix_array(view.dim, {view}, e.owner);
  }
  arrow::StreamChunks s = arrow::read_stream(*e.stream);
  const int64_t dim = arrow::matrix_type(*s.schema).dim;  // typed even with no chunks
  std::vector<MatrixView> views;
  for (const auto& chunk : s.chunks) views.push_back(arrow::fixed_size_list_f32(*s.schema, *chunk));
  py::object owner = s.chunks.size() == 1 ? own(std::move(s.chunks[0])) : py::object();
  return matrix_array(dim, views, owner);
}

py::array arrow_column(const py::handle& obj) {
  Exported e = export_arrow(obj);
  if (e.array) {
    const ColumnView view = arrow::column(*e.schema, *e.array);
    return column_array(view.type, {view}, e.owner);
  }
  arrow::StreamChunks s = arrow::read_stream(*e.stream);
  const ValueType type = arrow::column_type(*s.schema);
  std::vector<ColumnView> views;
  for (const auto& chunk : s.chunks) views.push_back(arrow::column(*s.schema, *chunk));
  py::object owner = s.chunks.size() == 1 ? own(std::move(s.chunks[0])) : py::object();
  return column_array(type, views, owner);
}

py::dict arrow_columns(const py::handle& obj) {
  py::dict out;
  Exported e = export_arrow(obj);
  if (e.array) {
    const arrow::Columns batch = arrow::struct_columns(*e.schema, *e.array);
    for (size_t i = 0; i < batch.names.size(); ++i)
      out[py::str(batch.names[i])] =
          column_array(batch.columns[i].type, {batch.columns[i]}, e.owner);
    return out;
  }
  // A table: every chunk is a struct batch of the same schema.
  arrow::StreamChunks s = arrow::read_stream(*e.stream);
  const auto names = arrow::struct_names(*s.schema);
  const auto types = arrow::struct_types(*s.schema);
  std::vector<arrow::Columns> batches;
  for (const auto& chunk : s.chunks) batches.push_back(arrow::struct_columns(*s.schema, *chunk));
  // One chunk backs every column's view, so all columns share its owner.
  py::object owner = s.chunks.size() == 1 ? own(std::move(s.chunks[0])) : py::object();
  for (size_t i = 0; i < names.size(); ++i) {
    std::vector<ColumnView> parts;
    for (const auto& batch : batches) parts.push_back(batch.columns[i]);
    out[py::str(names[i])] = column_array(types[i], parts, owner);
  }
  return out;
}

}  // namespace

void bind_arrow(py::module_& m) {
  m.def("arrow_matrix", &arrow_matrix, py::arg("obj"),
        "FixedSizeList<float32 | float64>[dim] (array or stream) -> float32 (n, dim) array.\n"
        "Zero copy (read-only) for one chunk of float32; float64 and several chunks are copied.");
  m.def("arrow_column", &arrow_column, py::arg("obj"),
        "A primitive Arrow array or stream (int, uint, float, bool) -> 1-D array of the\n"
        "matching dtype. Zero copy (read-only) for one chunk; bools are unpacked.");
  m.def("arrow_columns", &arrow_columns, py::arg("obj"),
        "A record batch (struct array) or table (stream of struct batches) -> {name: 1-D array}.");
}

}  // namespace engine::bind
