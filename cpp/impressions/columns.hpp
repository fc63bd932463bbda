// Impression records staged in the Arrow layout of the log's schema
// (engine/impressions/logger.py documents the columns).
//
// Why native: the logger's writer thread used to validate each record and
// build the batch in Python, ~30 us of GIL per record. On a request thread
// that gives up the GIL at every native call, each hand-back could then wait
// for the writer (up to the 5 ms switch interval), which set the ranking
// p99. Here a request thread copies its record in (a few us) and the writer
// takes whole batches: its Python work is per batch, not per record.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace engine::impressions {

// Offsets are int64 while staged (a full queue may hold more than 2**31
// values); a taken batch is small enough for Arrow's int32 offsets.

// A string column: offsets + UTF-8 bytes.
struct StringColumn {
  std::vector<int64_t> offsets{0};
  std::string data;
  void push(std::string_view s);
};

// A list column: offsets, values and (for nullable lists) validity.
template <typename T>
struct ListColumn {
  std::vector<int64_t> offsets{0};
  std::vector<T> values;
  std::vector<uint8_t> valid;  // one byte per list (read only for the nullable columns)
  void push(const T* v, size_t n);
  void push_null();
};

// One record as borrowed views; arrays already in the schema's dtypes,
// per-item arrays all of length n, features n x n_features row-major.
struct RecordView {
  std::string_view request_id, surface, context, bundle_version, model_versions;
  int64_t timestamp_us = 0;
  bool has_user_id = false;
  uint64_t user_id = 0;
  const float* user_vector = nullptr;  // nullptr: null
  size_t user_vector_size = 0;
  size_t n = 0;
  const uint64_t* item_ids = nullptr;
  const int32_t* positions = nullptr;
  const float* value = nullptr;
  std::vector<std::string_view> component_names;
  std::vector<const float*> component_values;  // each n values
  const float* features = nullptr;
  size_t n_features = 0;
  int32_t names_slot = -1;  // the writer's id of the record's feature names (-1: None)
  const double* propensities = nullptr;  // nullptr: null
  const double* choice_probabilities = nullptr;
};

// Records in column order, appended one at a time and taken in batches.
// Not synchronised: the binding guards each object with a mutex.
class Columns {
 public:
  // Values (or bytes) one record may hold in a column: a batch of one
  // record must still fit Arrow's int32 offsets.
  static constexpr size_t kMaxRecordValues = size_t(INT32_MAX);

  void append(const RecordView& r);  // throws ValueError for a record over kMaxRecordValues
  size_t size() const { return timestamp_us.size(); }
  size_t nbytes() const { return nbytes_; }
  // Moves out the oldest records: at most max_records of them, and no more
  // than fit in max_bytes (but at least one, when there is one and at_least_one).
  Columns take_front(size_t max_records, size_t max_bytes, bool at_least_one = true);
  // Appends copies of src's records [begin, end).
  void append_range(const Columns& src, size_t begin, size_t end);
  // Capacity for as many values as `other` holds (no copy, no page touched).
  void reserve_like(const Columns& other);
  // No records, the memory kept (a recycled batch: appends then neither
  // reallocate nor fault in fresh pages).
  void clear();
  size_t capacity_bytes() const;

  StringColumn request_id, surface, context, bundle_version, model_versions;
  std::vector<int64_t> timestamp_us;
  std::vector<uint64_t> user_id;
  std::vector<uint8_t> user_id_valid;
  ListColumn<float> user_vector;
  std::vector<int64_t> item_offsets{0};  // item_ids, positions and value share these
  std::vector<uint64_t> item_ids;
  std::vector<int32_t> positions;
  std::vector<float> value;
  std::vector<int64_t> component_offsets{0};  // map entries per record
  StringColumn component_names;
  ListColumn<float> component_values;  // one list per map entry
  std::vector<int32_t> n_features;
  ListColumn<float> features;
  std::vector<int32_t> names_slot;
  ListColumn<double> propensities, choice_probabilities;

 private:
  template <typename F, typename O>
  void visit(const Columns& other, F&& f, O&& offsets);
  std::vector<size_t> record_bytes_;
  size_t nbytes_ = 0;
};

}  // namespace engine::impressions
