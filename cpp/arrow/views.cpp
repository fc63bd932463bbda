#include "arrow/views.hpp"

#include <cstring>
#include <limits>
#include <set>

#include "arrow/bitmap.hpp"
#include "common/errors.hpp"

namespace engine::arrow {

namespace {

// ---- messages --------------------------------------------------------------

// A format string with a reader's name for it, so a TypeError says "'+l'
// (list)" rather than only the code. Unknown codes are quoted as they are.
std::string describe(const char* format) {
  static const struct {
    const char* code;
    const char* name;
  } known[] = {
      {"n", "null"},          {"b", "bool"},          {"c", "int8"},
      {"C", "uint8"},         {"s", "int16"},         {"S", "uint16"},
      {"i", "int32"},         {"I", "uint32"},        {"l", "int64"},
      {"L", "uint64"},        {"e", "float16"},       {"f", "float32"},
      {"g", "float64"},       {"u", "string"},        {"U", "large string"},
      {"vu", "string view"},  {"z", "binary"},        {"Z", "large binary"},
      {"vz", "binary view"},  {"+l", "list"},         {"+L", "large list"},
      {"+vl", "list view"},   {"+vL", "large list view"}, {"+s", "struct"},
      {"+m", "map"},
  };
  std::string out = "'" + std::string(format) + "'";
  for (const auto& k : known)
    if (std::strcmp(format, k.code) == 0) return out + " (" + k.name + ")";
  if (std::strncmp(format, "+w:", 3) == 0) return out + " (fixed-size list)";
  if (std::strncmp(format, "+u", 2) == 0) return out + " (union)";
  if (std::strncmp(format, "d:", 2) == 0) return out + " (decimal)";
  if (std::strncmp(format, "w:", 2) == 0) return out + " (fixed-size binary)";
  if (format[0] == 't') return out + " (date / time)";
  return out;
}

std::string quoted(const std::string& name) { return "'" + name + "'"; }

// ---- structure checks (before any pointer is read) -------------------------

int64_t checked_add(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out))
    throw ValueError("Arrow array: offset + length overflows");
  return out;
}

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) throw ValueError("Arrow array: size overflows");
  return out;
}

void check_schema(const ArrowSchema& s) {
  if (s.release == nullptr) throw ValueError("Arrow schema was already released");
  if (s.format == nullptr) throw ValueError("Arrow schema has no format string");
  if (s.n_children < 0)
    throw ValueError("Arrow schema: negative n_children " + std::to_string(s.n_children));
  if (s.n_children > 0 && s.children == nullptr)
    throw ValueError("Arrow schema: n_children is " + std::to_string(s.n_children) +
                     " but children is null");
  for (int64_t i = 0; i < s.n_children; ++i)
    if (s.children[i] == nullptr)
      throw ValueError("Arrow schema: child " + std::to_string(i) + " is null");
  // A dictionary array's format is its index type: reading it as values
  // would silently return codes instead of values.
  if (s.dictionary != nullptr)
    throw TypeError("dictionary-encoded array (index format " + describe(s.format) +
                    "): expected plain values; decode it first");
}

const ArrowSchema& only_child(const ArrowSchema& s) {
  if (s.n_children != 1)
    throw ValueError("Arrow schema " + describe(s.format) + ": expected 1 child, got " +
                     std::to_string(s.n_children));
  check_schema(*s.children[0]);
  return *s.children[0];
}

// The layout a spec-conforming producer gives this type; anything else is
// refused rather than guessed at.
void check_array(const ArrowArray& a, int64_t n_buffers, int64_t n_children, const char* format) {
  const std::string where = "Arrow array " + describe(format) + ": ";
  if (a.release == nullptr) throw ValueError(where + "already released");
  if (a.length < 0) throw ValueError(where + "negative length " + std::to_string(a.length));
  if (a.offset < 0) throw ValueError(where + "negative offset " + std::to_string(a.offset));
  if (a.null_count < -1)
    throw ValueError(where + "invalid null_count " + std::to_string(a.null_count));
  checked_add(a.offset, a.length);
  if (a.n_buffers != n_buffers)
    throw ValueError(where + "expected " + std::to_string(n_buffers) + " buffers, got " +
                     std::to_string(a.n_buffers));
  if (n_buffers > 0 && a.buffers == nullptr) throw ValueError(where + "buffers is null");
  if (a.n_children != n_children)
    throw ValueError(where + "expected " + std::to_string(n_children) + " children, got " +
                     std::to_string(a.n_children));
  if (n_children > 0 && a.children == nullptr) throw ValueError(where + "children is null");
  for (int64_t i = 0; i < n_children; ++i)
    if (a.children[i] == nullptr)
      throw ValueError(where + "child " + std::to_string(i) + " is null");
}

// Position (relative to `first`) of the first null among the physical slots
// [first, first + count), or -1. null_count may be -1 (not computed) or count
// the whole buffer rather than this slice, so the bitmap decides.
int64_t first_null(const ArrowArray& a, int64_t first, int64_t count) {
  if (a.null_count == 0 || count == 0) return -1;
  const auto* validity = static_cast<const uint8_t*>(a.buffers[0]);
  if (validity == nullptr) {
    if (a.null_count > 0)
      throw ValueError("Arrow array: null_count is " + std::to_string(a.null_count) +
                       " but there is no validity bitmap");
    return -1;
  }
  return first_unset_bit(validity, first, count);
}

// The values buffer of a primitive array; may be null only when nothing is read.
const void* values_buffer(const ArrowArray& a, int64_t count, const char* format) {
  const void* data = a.buffers[1];
  if (data == nullptr && count > 0)
    throw ValueError("Arrow array " + describe(format) + ": values buffer is null");
  return data;
}

bool parse_type(const char* format, ValueType* out) {
  static const struct {
    const char* code;
    ValueType type;
  } codes[] = {
      {"c", ValueType::i8},  {"s", ValueType::i16}, {"i", ValueType::i32},
      {"l", ValueType::i64}, {"C", ValueType::u8},  {"S", ValueType::u16},
      {"I", ValueType::u32}, {"L", ValueType::u64}, {"f", ValueType::f32},
      {"g", ValueType::f64}, {"b", ValueType::boolean},
  };
  for (const auto& c : codes)
    if (std::strcmp(format, c.code) == 0) {
      *out = c.type;
      return true;
    }
  return false;
}

// `length` rows of a primitive array starting at logical row `start`: a
// struct child is read at the struct's offset, a top-level array at 0.
ColumnView column_slice(const ArrowSchema& s, const ArrowArray& a, int64_t start, int64_t length) {
  ColumnView view;
  view.type = column_type(s);
  check_array(a, 2, 0, s.format);
  if (checked_add(start, length) > a.length)
    throw ValueError("Arrow array: column has " + std::to_string(a.length) +
                     " values, its parent needs " + std::to_string(start + length));
  const int64_t first = checked_add(a.offset, start);
  const int64_t null_at = first_null(a, first, length);
  if (null_at >= 0) throw ValueError("contains nulls at row " + std::to_string(null_at));
  view.length = length;
  const void* data = values_buffer(a, length, s.format);
  if (view.bit_packed()) {
    view.bits = static_cast<const uint8_t*>(data);
    view.first_bit = first;
  } else if (data != nullptr) {
    const int64_t byte_offset = checked_mul(first, int64_t(byte_width(view.type)));
    view.values = static_cast<const char*>(data) + byte_offset;
  }
  return view;
}

// Prefixes an error with the column it came from, keeping its type.
template <typename Fn>
auto in_column(const std::string& name, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const TypeError& e) {
    throw TypeError("column " + quoted(name) + ": " + e.what());
  } catch (const ValueError& e) {
    throw ValueError("column " + quoted(name) + ": " + e.what());
  }
}

}  // namespace

// ---- primitive columns -----------------------------------------------------

size_t byte_width(ValueType type) {
  switch (type) {
    case ValueType::i8: case ValueType::u8: case ValueType::boolean: return 1;
    case ValueType::i16: case ValueType::u16: return 2;
    case ValueType::i32: case ValueType::u32: case ValueType::f32: return 4;
    case ValueType::i64: case ValueType::u64: case ValueType::f64: return 8;
  }
  return 0;
}

const char* type_name(ValueType type) {
  switch (type) {
    case ValueType::i8: return "int8";
    case ValueType::i16: return "int16";
    case ValueType::i32: return "int32";
    case ValueType::i64: return "int64";
    case ValueType::u8: return "uint8";
    case ValueType::u16: return "uint16";
    case ValueType::u32: return "uint32";
    case ValueType::u64: return "uint64";
    case ValueType::f32: return "float32";
    case ValueType::f64: return "float64";
    case ValueType::boolean: return "bool";
  }
  return "?";
}

ValueType column_type(const ArrowSchema& schema) {
  check_schema(schema);
  ValueType type;
  if (!parse_type(schema.format, &type))
    throw TypeError("expected a primitive array of integers (c C s S i I l L), floats (f g) "
                    "or booleans (b), got format " + describe(schema.format));
  return type;
}

ColumnView column(const ArrowSchema& schema, const ArrowArray& array) {
  return column_slice(schema, array, 0, array.length);
}

void copy_column(const ColumnView& view, void* out) {
  if (view.length == 0) return;
  if (view.bit_packed())
    unpack_bits(view.bits, view.first_bit, view.length, static_cast<uint8_t*>(out));
  else
    std::memcpy(out, view.values, size_t(view.length) * byte_width(view.type));
}

// ---- fixed-size-list matrices ----------------------------------------------

MatrixType matrix_type(const ArrowSchema& schema) {
  check_schema(schema);
  const char* format = schema.format;
  const std::string expected =
      "expected a fixed-size list '+w:N' of float32 ('f') or float64 ('g')";
  if (std::strncmp(format, "+w:", 3) != 0)
    throw TypeError(expected + ", got format " + describe(format));
  // "+w:" then decimal digits only; no sign, no trailing text.
  int64_t dim = 0;
  const char* p = format + 3;
  if (*p == '\0') throw ValueError("Arrow schema: fixed-size list format '+w:' has no size");
  for (; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9')
      throw ValueError("Arrow schema: malformed fixed-size list format " + describe(format));
    if (dim > (std::numeric_limits<int32_t>::max() - (*p - '0')) / 10)
      throw ValueError("Arrow schema: fixed-size list size too large in " + describe(format));
    dim = dim * 10 + (*p - '0');
  }
  const ArrowSchema& child = only_child(schema);
  MatrixType type;
  type.dim = dim;
  if (std::strcmp(child.format, "f") == 0)
    type.is_f64 = false;
  else if (std::strcmp(child.format, "g") == 0)
    type.is_f64 = true;
  else
    throw TypeError(expected + ", got " + describe(format) + " of " + describe(child.format));
  return type;
}

MatrixView fixed_size_list_f32(const ArrowSchema& schema, const ArrowArray& array) {
  const MatrixType type = matrix_type(schema);
  check_array(array, 1, 1, schema.format);
  const int64_t list_null = first_null(array, array.offset, array.length);
  if (list_null >= 0) throw ValueError("contains nulls at row " + std::to_string(list_null));

  const ArrowSchema& child_schema = *schema.children[0];
  const ArrowArray& child = *array.children[0];
  check_array(child, 2, 0, child_schema.format);
  // List row r covers child values [(offset + r) * dim, (offset + r + 1) * dim),
  // and the child's own offset shifts those again.
  const int64_t begin = checked_mul(array.offset, type.dim);
  const int64_t count = checked_mul(array.length, type.dim);
  if (checked_add(begin, count) > child.length)
    throw ValueError("Arrow array: fixed-size list needs " + std::to_string(begin + count) +
                     " child values, the child has " + std::to_string(child.length));
  const int64_t first = checked_add(child.offset, begin);
  const int64_t value_null = first_null(child, first, count);
  if (value_null >= 0)
    throw ValueError("contains nulls at row " + std::to_string(value_null / type.dim) +
                     " (a null value inside the list)");

  MatrixView view;
  view.is_f64 = type.is_f64;
  view.rows = array.length;
  view.dim = type.dim;
  const void* data = values_buffer(child, count, child_schema.format);
  if (data != nullptr)
    view.data = static_cast<const char*>(data) + checked_mul(first, type.is_f64 ? 8 : 4);
  return view;
}

void copy_matrix_f32(const MatrixView& view, float* out) {
  const size_t count = size_t(view.rows) * size_t(view.dim);
  if (count == 0) return;
  if (!view.is_f64) {
    std::memcpy(out, view.data, count * sizeof(float));
    return;
  }
  // memcpy per value: an Arrow buffer plus an offset need not be 8-aligned.
  const char* src = static_cast<const char*>(view.data);
  for (size_t i = 0; i < count; ++i) {
    double v;
    std::memcpy(&v, src + i * sizeof(double), sizeof(double));
    out[i] = float(v);
  }
}

// ---- struct arrays (record batches) ----------------------------------------

std::vector<std::string> struct_names(const ArrowSchema& schema) {
  check_schema(schema);
  if (std::strcmp(schema.format, "+s") != 0)
    throw TypeError("expected a struct '+s' (a record batch or table), got format " +
                    describe(schema.format));
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (int64_t i = 0; i < schema.n_children; ++i) {
    const char* name = schema.children[i]->name;
    names.emplace_back(name ? name : "");
    if (!seen.insert(names.back()).second)
      throw ValueError("duplicate column name " + quoted(names.back()));
  }
  return names;
}

std::vector<ValueType> struct_types(const ArrowSchema& schema) {
  const auto names = struct_names(schema);
  std::vector<ValueType> types;
  for (size_t i = 0; i < names.size(); ++i)
    types.push_back(in_column(names[i], [&] { return column_type(*schema.children[i]); }));
  return types;
}

Columns struct_columns(const ArrowSchema& schema, const ArrowArray& array) {
  Columns out;
  out.names = struct_names(schema);
  check_array(array, 1, schema.n_children, schema.format);
  const int64_t row_null = first_null(array, array.offset, array.length);
  if (row_null >= 0)
    throw ValueError("contains nulls at row " + std::to_string(row_null) + " (a null struct row)");
  out.length = array.length;
  for (size_t i = 0; i < out.names.size(); ++i)
    out.columns.push_back(in_column(out.names[i], [&] {
      return column_slice(*schema.children[i], *array.children[i], array.offset, array.length);
    }));
  return out;
}

}  // namespace engine::arrow
