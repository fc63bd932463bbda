// Typed, read-only views of Arrow C Data Interface arrays. Every function
// validates the schema / array pair before it reads a pointer (release,
// buffer and child counts, null pointers, negative lengths and offsets,
// overflow), honours `offset` on the array and on its children, and refuses
// nulls. Wrong types -> engine::TypeError naming the format found and the one
// expected; bad structure or nulls -> engine::ValueError. Views borrow: the
// caller keeps the ArrowArray alive for as long as a view is used.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "arrow/c_data.hpp"

namespace engine::arrow {

// The primitive value types a column may hold, named after numpy's dtypes.
enum class ValueType : uint8_t { i8, i16, i32, i64, u8, u16, u32, u64, f32, f64, boolean };

// Bytes per element once materialised (a bool becomes one byte).
size_t byte_width(ValueType type);
const char* type_name(ValueType type);

// One primitive column. Byte-wide types point at their first element (offsets
// applied), so `values` can be handed out zero copy; booleans are bit-packed
// and must be unpacked with copy_column.
struct ColumnView {
  ValueType type = ValueType::i64;
  int64_t length = 0;
  const void* values = nullptr;  // byte-wide types; null only when length == 0
  const uint8_t* bits = nullptr; // boolean: the packed values ...
  int64_t first_bit = 0;         // ... starting at this bit

  bool bit_packed() const { return type == ValueType::boolean; }
};

// Schema only (for an empty stream, or to type every chunk of one).
ValueType column_type(const ArrowSchema& schema);
ColumnView column(const ArrowSchema& schema, const ArrowArray& array);
// Writes length * byte_width(type) bytes; booleans are unpacked to 0 / 1.
void copy_column(const ColumnView& view, void* out);

// A FixedSizeList<float32 | float64>[dim] as a row-major (rows, dim) matrix.
struct MatrixView {
  const void* data = nullptr;  // row 0, offsets applied; null only when rows * dim == 0
  bool is_f64 = false;         // float64 child: the caller converts
  int64_t rows = 0;
  int64_t dim = 0;
};
struct MatrixType {
  bool is_f64 = false;
  int64_t dim = 0;
};

MatrixType matrix_type(const ArrowSchema& schema);
// Named for what is returned zero copy; a float64 child is reported in is_f64.
MatrixView fixed_size_list_f32(const ArrowSchema& schema, const ArrowArray& array);
// Writes rows * dim floats, converting float64 values.
void copy_matrix_f32(const MatrixView& view, float* out);

// A struct array (what a RecordBatch exports) split into its primitive
// columns, struct offset applied. Column names are unique.
struct Columns {
  std::vector<std::string> names;
  std::vector<ColumnView> columns;
  int64_t length = 0;
};
// The column names and types of a struct schema.
std::vector<std::string> struct_names(const ArrowSchema& schema);
std::vector<ValueType> struct_types(const ArrowSchema& schema);
Columns struct_columns(const ArrowSchema& schema, const ArrowArray& array);

}  // namespace engine::arrow
