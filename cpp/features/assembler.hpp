// The feature assembler: a FeatureSpec compiled against an item table.
//
// Construction reads what the spec needs from the item table and keeps, per
// item, its derived record (plan.hpp): the item-only features, finished, as
// float32, and the codes and cross parts the row ops read, 8 bytes each; plus
// the item vectors when the spec has a dot feature. Afterwards the object is
// immutable and every method is const and safe to call from many threads.
//
// Online, the request is encoded once into a RequestValues, derived once and
// broadcast over the candidate rows; offline, each row of a logged table
// carries its own request values and is derived on its own. Both then call
// assemble_rows (row.hpp) on blocks of rows.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arrow/c_data.hpp"
#include "common/huge_pages.hpp"
#include "features/arrow_input.hpp"
#include "features/plan.hpp"
#include "features/record.hpp"
#include "features/row.hpp"

namespace engine::features {

// One request's raw values, laid out for a plan (the online path's input).
class RequestValues {
 public:
  explicit RequestValues(const Plan& plan);

  // field: one of plan.request_fields(), read that way by the spec.
  void set_number(const Input& field, double v) {
    put_number(record_.data(), layout_, uint32_t(field.number_slot), v);
  }
  void set_code(const Input& field, uint64_t code) {
    put_code(record_.data(), layout_, uint32_t(field.code_slot), code);
  }
  // A {key: value} map (NaN values are missing); a field never set is missing.
  void set_map(const Input& field, std::vector<int64_t> keys, std::vector<double> values);
  // dim floats owned by the caller for as long as this is used; null = missing.
  void set_user_vector(const float* v) { user_vector_ = v; }

  const uint64_t* record() const { return record_.data(); }
  const MapView* maps() const { return maps_.data(); }
  const float* user_vector() const { return user_vector_; }

 private:
  RecordLayout layout_;
  std::vector<uint64_t> record_;
  std::vector<MapView> maps_;
  std::vector<std::vector<int64_t>> keys_;
  std::vector<std::vector<double>> values_;
  std::vector<KeyIndex> indexes_;
  const float* user_vector_ = nullptr;
};

// How a logged table's column gives one request field.
enum class Reader : uint8_t { scalar, string, map };  // scalar: primitive or Arrow's null type

// A logged table checked against the plan: per chunk, the views each row reads.
struct OfflineChunk {
  int64_t length = 0;
  NullableColumn item;  // item_row or item_id
  std::vector<Reader> reader;           // per request field, which of these it reads:
  std::vector<NullableColumn> scalars;
  std::vector<StringColumn> strings;
  std::vector<MapColumn> maps;
  VectorColumn user_vectors;
  bool has_user_vectors = false;
};
struct OfflineTable {
  bool by_item_id = false;  // else item_row
  int64_t rows = 0;
  std::vector<OfflineChunk> chunks;
};

class Assembler {
 public:
  // items: a struct schema and its chunks (record batches); item_vectors:
  // vector_rows x dim float32, row-major, or null: copied, or borrowed while
  // `vectors_owner` is held (the caller's promise that they never change,
  // as for a bundle's memory map: no second copy of the catalogue's vectors,
  // 256 MB at 1M x 64). Row i is item i's vector, or with `slots` (one per
  // item) row slots[i], and slot -1 a zero vector: a ranker then reads the
  // vector index's own copy, whose candidates' rows the search has just
  // re-scored and left in cache. Throws TypeError / ValueError naming the
  // column and the feature that needs it.
  Assembler(std::vector<FeatureDef> defs, const ArrowSchema& items_schema,
            const std::vector<const ArrowArray*>& item_chunks, const float* item_vectors,
            int64_t vector_rows, int64_t dim, std::shared_ptr<const void> vectors_owner = nullptr,
            const int32_t* slots = nullptr, int64_t n_slots = 0);

  const Plan& plan() const { return plan_; }
  int64_t n_items() const { return n_items_; }
  int64_t dim() const { return dim_; }
  size_t n_features() const { return plan_.n_features(); }

  // One request over `n` item rows: out is n x n_features, row-major. Rows
  // out of range and a non-finite user vector -> ValueError.
  void assemble(const int64_t* rows, size_t n, const RequestValues& request, float* out) const;

  // Offline: checks a logged table (struct schema + chunks, which the caller
  // keeps alive) against the plan, then assembles all of its rows.
  OfflineTable prepare_offline(const ArrowSchema& schema,
                               const std::vector<const ArrowArray*>& chunks) const;
  void assemble_offline(const OfflineTable& table, int threads, float* out) const;

 private:
  void build_items(const ArrowSchema& schema, const std::vector<const ArrowArray*>& chunks);
  const KeyIndex& item_id_index() const;  // built on first use (offline by item_id)
  void assemble_offline_rows(const OfflineTable& table, int64_t begin, int64_t end, float* out) const;

  // Defined here, so inlined: an out-of-line member is called through the
  // PLT in this -fPIC library, and returning the struct stalled every row.
  // Also prefetches the item's data: candidates are random rows of a store
  // far larger than the caches, and a block's rows are set before any is read.
  void set_item(RowInput& in, int64_t item) const {
    in.item.words = item_words_.data() + item * plan_.item.words();
    in.item.floats = item_floats_.data() + item * plan_.item.n_floats;
    in.item_vector = !plan_.has_dot  ? nullptr
                     : slots_.empty() ? vectors_ + item * dim_
                     : slots_[item] < 0 ? zero_vector_.data()
                                        : vectors_ + int64_t{slots_[item]} * dim_;
    if (!prefetch_) return;
    prefetch(in.item.words, plan_.item.words() * sizeof(uint64_t));
    prefetch(in.item.floats, plan_.item.n_floats * sizeof(float));
    if (plan_.has_dot) prefetch(in.item_vector, size_t(dim_) * sizeof(float));
  }
  static void prefetch(const void* p, size_t bytes) {
    const char* c = static_cast<const char*>(p);
    for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
    if (bytes) __builtin_prefetch(c + bytes - 1);
  }

  Plan plan_;
  int64_t n_items_ = 0;
  int64_t dim_ = 0;
  // The item records, read at a request's ~500 random rows: on huge pages,
  // so a row is not also a TLB miss and page walk (features of 480 random
  // rows after other work: 214-243 -> 178-186 us on a KVM guest, where a
  // page walk is two-dimensional).
  std::vector<uint64_t, HugePageAllocator<uint64_t>> item_words_;  // n_items x plan_.item.words()
  std::vector<float, HugePageAllocator<float>> item_floats_;       // n_items x plan_.item.n_floats
  const float* vectors_ = nullptr;     // rows x dim_ (plan has a dot): owned_vectors_ or borrowed
  std::vector<float> owned_vectors_;
  std::vector<int32_t, HugePageAllocator<int32_t>> slots_;  // per item, its row of vectors_ (or empty: the item's row)
  std::vector<float> zero_vector_;     // slot -1's vector
  std::shared_ptr<const void> vectors_owner_;
  bool prefetch_ = false;              // the store outgrows a core's caches
  // The item table's item_id column, for offline tables that name items by id.
  std::string item_id_problem_;      // why ids cannot be mapped (no column, wrong type), or empty
  std::vector<uint64_t> item_ids_;
  mutable std::mutex id_index_mutex_;
  mutable std::shared_ptr<const KeyIndex> id_index_;
};

// Non-finite values in a user or item vector -> the index of the first, or -1.
int64_t first_non_finite(const float* v, int64_t n);

}  // namespace engine::features
