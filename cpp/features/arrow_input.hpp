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
#include <cstring>
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
  // Inline: called per logged row and field.
  double number(int64_t r) const {  // a valid row, as double (bool: 0 / 1)
    using arrow::ValueType;
    const int64_t i = first + r;
    switch (type) {
      case ValueType::i8: return double(load<int8_t>(values, i));
      case ValueType::i16: return double(load<int16_t>(values, i));
      case ValueType::i32: return double(load<int32_t>(values, i));
      case ValueType::i64: return double(load<int64_t>(values, i));
      case ValueType::u8: return double(load<uint8_t>(values, i));
      case ValueType::u16: return double(load<uint16_t>(values, i));
      case ValueType::u32: return double(load<uint32_t>(values, i));
      case ValueType::u64: return double(load<uint64_t>(values, i));
      case ValueType::f32: return double(load<float>(values, i));
      case ValueType::f64: return load<double>(values, i);
      case ValueType::boolean: return bit_set(static_cast<const uint8_t*>(values), i) ? 1.0 : 0.0;
    }
    return 0.0;
  }
  uint64_t code(int64_t r) const {  // a valid row of an integer / bool column (hash.hpp)
    using arrow::ValueType;
    const int64_t i = first + r;
    switch (type) {
      case ValueType::i8: return uint64_t(int64_t(load<int8_t>(values, i)));
      case ValueType::i16: return uint64_t(int64_t(load<int16_t>(values, i)));
      case ValueType::i32: return uint64_t(int64_t(load<int32_t>(values, i)));
      case ValueType::i64: return uint64_t(load<int64_t>(values, i));
      case ValueType::u8: return load<uint8_t>(values, i);
      case ValueType::u16: return load<uint16_t>(values, i);
      case ValueType::u32: return load<uint32_t>(values, i);
      case ValueType::u64: return load<uint64_t>(values, i);
      case ValueType::boolean: return bit_set(static_cast<const uint8_t*>(values), i) ? 1 : 0;
      case ValueType::f32:
      case ValueType::f64: break;
    }
    return kMissingCode;  // callers only ask integer columns
  }

 private:
  template <typename T>
  static T load(const void* base, int64_t i) {
    T v;
    std::memcpy(&v, static_cast<const char*>(base) + i * int64_t(sizeof(T)), sizeof(T));
    return v;
  }
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
  std::string_view get(int64_t r) const {
    const int64_t i = first + r;
    if (layout == Layout::views) {
      const char* view = static_cast<const char*>(offsets_or_views) + i * 16;
      int32_t size;
      std::memcpy(&size, view, 4);
      if (size <= 12) return {view + 4, size_t(size)};
      int32_t buffer, offset;
      std::memcpy(&buffer, view + 8, 4);
      std::memcpy(&offset, view + 12, 4);
      return {view_buffers[buffer] + offset, size_t(size)};
    }
    int64_t b, e;
    if (layout == Layout::offsets32) {
      int32_t o[2];
      std::memcpy(o, static_cast<const char*>(offsets_or_views) + i * 4, 8);
      b = o[0], e = o[1];
    } else {
      std::memcpy(&b, static_cast<const char*>(offsets_or_views) + i * 8, 8);
      std::memcpy(&e, static_cast<const char*>(offsets_or_views) + i * 8 + 8, 8);
    }
    return {data + b, size_t(e - b)};
  }
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
  MapView get(int64_t r) const {
    MapView map;
    if (!valid(r)) return map;
    const int64_t i = first + r;
    int64_t b, e;
    if (offsets64) {
      std::memcpy(&b, static_cast<const char*>(offsets) + i * 8, 8);
      std::memcpy(&e, static_cast<const char*>(offsets) + i * 8 + 8, 8);
    } else {
      int32_t o[2];
      std::memcpy(o, static_cast<const char*>(offsets) + i * 4, 8);
      b = o[0], e = o[1];
    }
    map.size = e - b;
    if (map.size == 0) return map;
    map.keys = static_cast<const char*>(keys) + b * 8;
    map.values = static_cast<const char*>(values) + b * 8;
    map.value_validity = value_validity;
    map.value_bit = value_bit + b;
    return map;
  }
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
