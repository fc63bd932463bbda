#include "features/arrow_input.hpp"

#include <cstring>
#include <string>
#include <utility>

#include "arrow/bitmap.hpp"
#include "common/errors.hpp"

namespace engine::features {

namespace {

template <typename T>
T load(const void* base, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + i * int64_t(sizeof(T)), sizeof(T));
  return v;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) throw ValueError("Arrow array: offset + length overflows");
  return out;
}

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) throw ValueError("Arrow array: size overflows");
  return out;
}

// The layout a spec-conforming producer gives this type (n_buffers < 0: at
// least -n_buffers, for string views' variadic buffers).
void check_array(const ArrowArray& a, int64_t n_buffers, int64_t n_children, const char* format) {
  const std::string where = "Arrow array " + describe_format(format) + ": ";
  if (a.release == nullptr) throw ValueError(where + "already released");
  if (a.length < 0 || a.offset < 0)
    throw ValueError(where + "negative length or offset");
  if (a.null_count < -1) throw ValueError(where + "invalid null_count");
  checked_add(a.offset, a.length);
  const bool ok = n_buffers >= 0 ? a.n_buffers == n_buffers : a.n_buffers >= -n_buffers;
  if (!ok)
    throw ValueError(where + "unexpected number of buffers " + std::to_string(a.n_buffers));
  if (a.n_buffers > 0 && a.buffers == nullptr) throw ValueError(where + "buffers is null");
  if (a.n_children != n_children)
    throw ValueError(where + "expected " + std::to_string(n_children) + " children, got " +
                     std::to_string(a.n_children));
  if (n_children > 0 && a.children == nullptr) throw ValueError(where + "children is null");
  for (int64_t i = 0; i < n_children; ++i)
    if (a.children[i] == nullptr) throw ValueError(where + "a child is null");
}

void check_schema(const ArrowSchema& s, int64_t n_children) {
  if (s.release == nullptr || s.format == nullptr)
    throw ValueError("Arrow schema is released or has no format");
  if (s.dictionary != nullptr)
    throw TypeError("dictionary-encoded (categorical) column: expected plain values; decode it "
                    "first (pyarrow: .dictionary_decode(), polars: .cast(pl.String) or the codes)");
  if (s.n_children != n_children)
    throw TypeError("Arrow schema " + describe_format(s.format) + ": expected " +
                    std::to_string(n_children) + " children, got " + std::to_string(s.n_children));
  for (int64_t i = 0; i < n_children; ++i)
    if (s.children == nullptr || s.children[i] == nullptr)
      throw ValueError("Arrow schema: a child is null");
}

// The physical index of view row 0, after checking the array has the rows.
int64_t first_row(const ArrowArray& a, int64_t start, int64_t length) {
  if (checked_add(start, length) > a.length)
    throw ValueError("Arrow array has " + std::to_string(a.length) + " rows, its parent needs " +
                     std::to_string(start + length));
  return checked_add(a.offset, start);
}

// The validity bitmap, or null when the array declares no nulls.
const uint8_t* validity_of(const ArrowArray& a) {
  if (a.null_count == 0) return nullptr;
  const auto* bits = static_cast<const uint8_t*>(a.buffers[0]);
  if (bits == nullptr && a.null_count > 0)
    throw ValueError("Arrow array: null_count is " + std::to_string(a.null_count) +
                     " but there is no validity bitmap");
  return bits;
}

bool has_null(const uint8_t* validity, int64_t first, int64_t count) {
  return validity != nullptr && count > 0 && arrow::first_unset_bit(validity, first, count) >= 0;
}

const void* required_buffer(const ArrowArray& a, int64_t index, bool needed, const char* format) {
  const void* p = a.buffers[index];
  if (p == nullptr && needed)
    throw ValueError("Arrow array " + describe_format(format) + ": buffer " + std::to_string(index) +
                     " is null");
  return p;
}

}  // namespace

std::string describe_format(const char* format) {
  static const struct {
    const char* code;
    const char* name;
  } known[] = {
      {"n", "null"},   {"b", "bool"},    {"c", "int8"},     {"C", "uint8"},
      {"s", "int16"},  {"S", "uint16"},  {"i", "int32"},    {"I", "uint32"},
      {"l", "int64"},  {"L", "uint64"},  {"e", "float16"},  {"f", "float32"},
      {"g", "float64"}, {"u", "string"}, {"U", "large string"}, {"vu", "string view"},
      {"z", "binary"}, {"Z", "large binary"}, {"vz", "binary view"}, {"+l", "list"},
      {"+L", "large list"}, {"+s", "struct"}, {"+m", "map"},
  };
  std::string out(1, '\'');  // appended, not "'" + ...: GCC 12 warns falsely (-Wrestrict)
  out += format;
  out += '\'';
  for (const auto& k : known)
    if (std::strcmp(format, k.code) == 0) return out + " (" + k.name + ")";
  if (std::strncmp(format, "+w:", 3) == 0) return out + " (fixed-size list)";
  if (format[0] == 't') return out + " (date / time)";
  if (std::strncmp(format, "d:", 2) == 0) return out + " (decimal)";
  return out;
}

// ---- primitive -------------------------------------------------------------

NullableColumn nullable_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                               int64_t length, bool allow_null_type) {
  NullableColumn col;
  col.length = length;
  if (schema.format != nullptr && std::strcmp(schema.format, "n") == 0 && allow_null_type) {
    check_array(array, 0, 0, schema.format);
    first_row(array, start, length);
    col.all_null = true;
    return col;
  }
  col.type = arrow::column_type(schema);  // TypeError naming the format; refuses dictionaries
  check_array(array, 2, 0, schema.format);
  col.first = first_row(array, start, length);
  col.validity = validity_of(array);
  col.values = required_buffer(array, 1, length > 0, schema.format);
  return col;
}

// ---- strings ---------------------------------------------------------------

bool is_string_format(const char* format) {
  return std::strcmp(format, "u") == 0 || std::strcmp(format, "U") == 0 ||
         std::strcmp(format, "vu") == 0;
}

StringColumn string_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                           int64_t length) {
  check_schema(schema, 0);
  const char* format = schema.format;
  StringColumn col;
  col.length = length;
  if (std::strcmp(format, "vu") == 0) {
    // validity, views, the variadic data buffers, then their sizes (int64 each).
    check_array(array, -3, 0, format);
    col.first = first_row(array, start, length);
    col.validity = validity_of(array);
    col.layout = StringColumn::Layout::views;
    col.offsets_or_views = required_buffer(array, 1, length > 0, format);
    const int64_t n_data = array.n_buffers - 3;
    const void* sizes = required_buffer(array, array.n_buffers - 1, n_data > 0, format);
    col.view_buffers = reinterpret_cast<const char* const*>(array.buffers + 2);
    for (int64_t r = 0; r < length; ++r) {
      if (!col.valid(r)) continue;
      const char* view = static_cast<const char*>(col.offsets_or_views) + (col.first + r) * 16;
      const int32_t size = load<int32_t>(view, 0);
      if (size < 0) throw ValueError("Arrow string view: negative size at row " + std::to_string(r));
      if (size <= 12) continue;
      const int32_t buffer = load<int32_t>(view + 8, 0), offset = load<int32_t>(view + 12, 0);
      if (buffer < 0 || buffer >= n_data || offset < 0 ||
          int64_t(offset) + size > load<int64_t>(sizes, buffer) || col.view_buffers[buffer] == nullptr)
        throw ValueError("Arrow string view: row " + std::to_string(r) +
                         " points outside its data buffers");
    }
    return col;
  }
  if (std::strcmp(format, "u") != 0 && std::strcmp(format, "U") != 0)
    throw TypeError("expected a string column ('u', 'U' or 'vu'), got format " +
                    describe_format(format));
  check_array(array, 3, 0, format);
  col.first = first_row(array, start, length);
  col.validity = validity_of(array);
  const bool wide = format[0] == 'U';
  col.layout = wide ? StringColumn::Layout::offsets64 : StringColumn::Layout::offsets32;
  col.offsets_or_views = required_buffer(array, 1, true, format);
  col.data = static_cast<const char*>(array.buffers[2]);
  // Offsets never decrease and start at >= 0: every row then lies inside the
  // data the producer wrote (its size is not part of the C interface).
  int64_t previous = 0;
  for (int64_t i = col.first; i <= col.first + length; ++i) {
    const int64_t o = wide ? load<int64_t>(col.offsets_or_views, i)
                           : int64_t(load<int32_t>(col.offsets_or_views, i));
    if (o < previous || (i == col.first && o < 0))
      throw ValueError("Arrow string array: offsets decrease at row " + std::to_string(i - col.first));
    previous = o;
  }
  if (col.data == nullptr && previous > (wide ? load<int64_t>(col.offsets_or_views, col.first)
                                              : int64_t(load<int32_t>(col.offsets_or_views, col.first))))
    throw ValueError("Arrow string array: data buffer is null");
  return col;
}

// ---- maps ------------------------------------------------------------------

bool is_map_format(const char* format) {
  return std::strcmp(format, "+m") == 0 || std::strcmp(format, "+l") == 0 ||
         std::strcmp(format, "+L") == 0;
}

MapColumn map_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                     int64_t length) {
  const std::string expected =
      "expected map<int64, float64> or list<struct<key: int64, value: float64>>";
  check_schema(schema, is_map_format(schema.format) ? 1 : schema.n_children);
  const char* format = schema.format;
  if (!is_map_format(format)) throw TypeError(expected + ", got format " + describe_format(format));
  const ArrowSchema& entry = *schema.children[0];
  if (entry.format == nullptr || std::strcmp(entry.format, "+s") != 0 || entry.n_children != 2)
    throw TypeError(expected + ", got a list of " + describe_format(entry.format ? entry.format : "?"));
  check_schema(entry, 2);
  // A map's entries are (key, value) by position; a list of structs names them.
  int key_child = 0, value_child = 1;
  if (format[1] != 'm') {
    auto named = [&](int i, const char* name) {
      return entry.children[i]->name != nullptr && std::strcmp(entry.children[i]->name, name) == 0;
    };
    if (named(0, "value") && named(1, "key")) std::swap(key_child, value_child);
    else if (!(named(0, "key") && named(1, "value")))
      throw TypeError(expected + ": the struct fields must be named 'key' and 'value'");
  }
  const ArrowSchema& key_schema = *entry.children[key_child];
  const ArrowSchema& value_schema = *entry.children[value_child];
  check_schema(key_schema, 0);
  check_schema(value_schema, 0);
  if (std::strcmp(key_schema.format, "l") != 0 || std::strcmp(value_schema.format, "g") != 0)
    throw TypeError(expected + ", got keys " + describe_format(key_schema.format) + " and values " +
                    describe_format(value_schema.format) + " (cast them)");

  MapColumn col;
  col.offsets64 = format[1] == 'L';
  col.length = length;
  check_array(array, 2, 1, format);
  col.first = first_row(array, start, length);
  col.validity = validity_of(array);
  col.offsets = required_buffer(array, 1, true, format);
  const ArrowArray& entries = *array.children[0];
  check_array(entries, 1, 2, entry.format);
  auto offset_at = [&](int64_t i) {
    return col.offsets64 ? load<int64_t>(col.offsets, i) : int64_t(load<int32_t>(col.offsets, i));
  };
  const int64_t begin = offset_at(col.first);
  int64_t previous = begin;
  if (begin < 0) throw ValueError("Arrow map: negative offset");
  for (int64_t i = col.first + 1; i <= col.first + length; ++i) {
    const int64_t o = offset_at(i);
    if (o < previous)
      throw ValueError("Arrow map: offsets decrease at row " + std::to_string(i - col.first));
    previous = o;
  }
  const int64_t end = previous;
  if (end > entries.length)
    throw ValueError("Arrow map: offsets reach entry " + std::to_string(end) + ", there are " +
                     std::to_string(entries.length));
  if (has_null(validity_of(entries), entries.offset + begin, end - begin))
    throw ValueError("a map entry is null");
  const ArrowArray& key_array = *entries.children[key_child];
  const ArrowArray& value_array = *entries.children[value_child];
  check_array(key_array, 2, 0, key_schema.format);
  check_array(value_array, 2, 0, value_schema.format);
  // Child element of entry e: child.offset + entries.offset + e.
  const int64_t key_first = first_row(key_array, entries.offset, end);
  const int64_t value_first = first_row(value_array, entries.offset, end);
  if (has_null(validity_of(key_array), key_first + begin, end - begin))
    throw ValueError("a map key is null");
  const bool any = end > begin;
  col.keys = static_cast<const char*>(required_buffer(key_array, 1, any, key_schema.format)) +
             (any ? key_first * 8 : 0);
  col.values = static_cast<const char*>(required_buffer(value_array, 1, any, value_schema.format)) +
               (any ? value_first * 8 : 0);
  col.value_validity = validity_of(value_array);
  col.value_bit = value_first;
  return col;
}

// ---- user vectors ----------------------------------------------------------

const float* VectorColumn::get(int64_t r, float* scratch) const {
  const int64_t element = (first + r) * dim;
  if (is_f64) {
    for (int64_t j = 0; j < dim; ++j) scratch[j] = float(load<double>(values, element + j));
    return scratch;
  }
  const char* p = static_cast<const char*>(values) + element * 4;
  if (reinterpret_cast<uintptr_t>(p) % alignof(float) == 0) return reinterpret_cast<const float*>(p);
  std::memcpy(scratch, p, size_t(dim) * 4);
  return scratch;
}

VectorColumn vector_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                           int64_t length) {
  const arrow::MatrixType type = arrow::matrix_type(schema);  // TypeError naming the format
  VectorColumn col;
  col.dim = type.dim;
  col.is_f64 = type.is_f64;
  col.length = length;
  check_array(array, 1, 1, schema.format);
  const int64_t list_first = first_row(array, start, length);
  col.validity = validity_of(array);
  const ArrowArray& child = *array.children[0];
  check_array(child, 2, 0, schema.children[0]->format);
  // List row i covers child elements [i * dim, (i + 1) * dim), then the child's offset.
  const int64_t needed = checked_mul(checked_add(list_first, length), type.dim);
  if (needed > child.length)
    throw ValueError("Arrow fixed-size list needs " + std::to_string(needed) +
                     " child values, the child has " + std::to_string(child.length));
  col.first = list_first;
  const bool any = length > 0 && type.dim > 0;
  col.values = static_cast<const char*>(required_buffer(child, 1, any, schema.children[0]->format)) +
               (any ? child.offset * (type.is_f64 ? 8 : 4) : 0);
  const uint8_t* child_validity = validity_of(child);
  if (child_validity != nullptr)
    for (int64_t r = 0; r < length; ++r)
      if (col.valid(r) && has_null(child_validity, child.offset + (list_first + r) * type.dim, type.dim))
        throw ValueError("row " + std::to_string(r) + " has a null inside the vector");
  return col;
}

}  // namespace engine::features
