// Arrow columns as the feature assembler reads them: with nulls (a null is a
// missing value here, where arrow/views.hpp refuses them), strings (plain,
// large and polars' string views), lookup maps and user vectors. Structure is
// validated when a view is made (buffer and child counts, offsets within
// their children, view buffers within their sizes), so reading a row later
// needs no checks. Views borrow the ArrowArray; the caller keeps it alive.
//
// `start` is the row of the array where the view begins: a struct child is
// read at its parent's offset, a top-level array at 0.
#pragma once
#include <cstdint>
#include <string_view>

#include "arrow/c_data.hpp"
#include "arrow/views.hpp"
#include "features/record.hpp"

namespace engine::features {

// A primitive column (integers, floats, bool); row r is physical element first + r.
struct NullableColumn {
  arrow::ValueType type = arrow::ValueType::i64;
  int64_t length = 0;
  const void* values = nullptr;      // for bool: the packed bits
  const uint8_t* validity = nullptr; // null: no nulls
  int64_t first = 0;
  bool all_null = false;             // Arrow's null type 'n'

  bool is_integer() const { return type != arrow::ValueType::f32 && type != arrow::ValueType::f64; }
  bool valid(int64_t r) const {
    return !all_null && (validity == nullptr || bit_set(validity, first + r));
  }
  double number(int64_t r) const;  // a valid row, as double (bool: 0 / 1)
  uint64_t code(int64_t r) const;  // a valid row of an integer / bool column (hash.hpp)
};

// Accepts the null type 'n' too (every row missing) when allow_null_type.
NullableColumn nullable_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                               int64_t length, bool allow_null_type);

// 'u' (string), 'U' (large string) or 'vu' (string view, polars' default).
struct StringColumn {
  enum class Layout : uint8_t { offsets32, offsets64, views } layout = Layout::offsets32;
  int64_t length = 0;
  const uint8_t* validity = nullptr;
  int64_t first = 0;
  const void* offsets_or_views = nullptr;
  const char* data = nullptr;               // offsets layouts
  const char* const* view_buffers = nullptr; // views layout: the variadic data buffers

  bool valid(int64_t r) const { return validity == nullptr || bit_set(validity, first + r); }
  std::string_view get(int64_t r) const;
};

bool is_string_format(const char* format);
StringColumn string_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                           int64_t length);

// map<int64, float64> ('+m') or list / large list<struct<key: int64, value: float64>>.
struct MapColumn {
  bool offsets64 = false;
  int64_t length = 0;
  const uint8_t* validity = nullptr;  // of the lists
  int64_t first = 0;
  const void* offsets = nullptr;
  const void* keys = nullptr;          // entry 0 (struct and key offsets applied)
  const void* values = nullptr;
  const uint8_t* value_validity = nullptr;
  int64_t value_bit = 0;               // validity bit of entry 0

  bool valid(int64_t r) const { return validity == nullptr || bit_set(validity, first + r); }
  // Row r's map; a null row gives an empty map (every lookup -> default).
  MapView get(int64_t r) const;
};

bool is_map_format(const char* format);
MapColumn map_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                     int64_t length);

// FixedSizeList<float32 | float64>[dim], nullable rows.
struct VectorColumn {
  int64_t dim = 0;
  bool is_f64 = false;
  int64_t length = 0;
  const uint8_t* validity = nullptr;
  int64_t first = 0;        // list row of view row 0
  const void* values = nullptr;  // child element 0 (child offset applied)

  bool valid(int64_t r) const { return validity == nullptr || bit_set(validity, first + r); }
  // Row r as float32: a pointer into the array, or `scratch` (dim floats) filled from float64.
  const float* get(int64_t r, float* scratch) const;
};

VectorColumn vector_column(const ArrowSchema& schema, const ArrowArray& array, int64_t start,
                           int64_t length);

// Arrow's description of a format for messages ("'u' (string)").
std::string describe_format(const char* format);

}  // namespace engine::features
