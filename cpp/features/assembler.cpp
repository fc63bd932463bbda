// cpp/CMakeLists.txt stops GCC turning the per-row loops on a few words back
// into memset / memcpy calls (record.hpp, clear_record, says why those are
// slow at these sizes).

#include "features/assembler.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "arrow/bitmap.hpp"
#include "common/errors.hpp"
#include "common/parallel.hpp"
#include "features/hash.hpp"
#include "features/row.hpp"

namespace engine::features {

namespace {

using arrow::ValueType;

// Checks one record batch (a struct array) against its schema; a null
// struct row has no values to read and is refused.
void check_batch(const ArrowSchema& schema, const ArrowArray& array, const char* what) {
  const std::string where = std::string(what) + ": ";
  if (array.release == nullptr) throw ValueError(where + "Arrow array already released");
  if (array.length < 0 || array.offset < 0) throw ValueError(where + "negative length or offset");
  if (array.n_buffers != 1 || array.n_children != schema.n_children ||
      (array.n_children > 0 && array.children == nullptr) || array.buffers == nullptr)
    throw ValueError(where + "the record batch does not match its schema");
  for (int64_t i = 0; i < array.n_children; ++i)
    if (array.children[i] == nullptr) throw ValueError(where + "a column array is null");
  if (array.null_count != 0 && array.buffers[0] != nullptr) {
    const int64_t r = arrow::first_unset_bit(static_cast<const uint8_t*>(array.buffers[0]), array.offset,
                                             array.length);
    if (r >= 0) throw ValueError(where + "row " + std::to_string(r) + " is null (a null struct row)");
  }
}

int find_column(const std::vector<std::string>& names, const std::string& name) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return int(i);
  return -1;
}

std::string listing(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 30; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 30) out += ", ...";
  return out.empty() ? "no columns" : out;
}

// Runs fn, prefixing any TypeError / ValueError with `where`.
template <typename Fn>
auto prefixed(const std::string& where, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const TypeError& e) {
    throw TypeError(where + ": " + e.what());
  } catch (const ValueError& e) {
    throw ValueError(where + ": " + e.what());
  }
}

bool is_float(ValueType t) { return t == ValueType::f32 || t == ValueType::f64; }
bool is_unsigned(ValueType t) {
  return t == ValueType::u8 || t == ValueType::u16 || t == ValueType::u32 || t == ValueType::u64;
}

// A categorical use of a float column: refused rather than truncated.
std::string category_type_error(const std::string& where, ValueType type, const std::string& user,
                                bool strings_too) {
  return where + " is " + arrow::type_name(type) + "; " + user + " needs integer" +
         (strings_too ? ", bool or string" : " or bool") + " category ids";
}

}  // namespace

int64_t first_non_finite(const float* v, int64_t n) {
  // One branch-free pass (vectorised) on the exponent bits; the position
  // only when something is wrong.
  uint32_t all_ones = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, v + i, 4);
    all_ones |= uint32_t((bits & 0x7F800000u) == 0x7F800000u);
  }
  if (!all_ones) return -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(v[i])) return i;
  return -1;
}

// ---- RequestValues ---------------------------------------------------------

RequestValues::RequestValues(const Plan& plan)
    : layout_(plan.request.raw),
      record_(plan.request.raw.width()),
      maps_(plan.n_maps),
      keys_(plan.n_maps),
      values_(plan.n_maps),
      indexes_(plan.n_maps) {
  clear_record(record_.data(), layout_);
}

void RequestValues::set_map(const Input& field, std::vector<int64_t> keys, std::vector<double> values) {
  const size_t i = size_t(field.map_index);
  if (keys.size() != values.size()) throw ValueError("internal: map keys and values differ in size");
  keys_[i] = std::move(keys);
  values_[i] = std::move(values);
  MapView map;
  map.size = int64_t(keys_[i].size());
  map.keys = keys_[i].data();
  map.values = values_[i].data();
  if (map.size > kScanMapSize) {
    indexes_[i].build(map.keys, map.size);
    map.index = &indexes_[i];
  }
  maps_[i] = map;
}

// ---- construction ----------------------------------------------------------

Assembler::Assembler(std::vector<FeatureDef> defs, const ArrowSchema& items_schema,
                     const std::vector<const ArrowArray*>& item_chunks, const float* item_vectors,
                     int64_t vector_rows, int64_t dim, std::shared_ptr<const void> vectors_owner,
                     const int32_t* slots, int64_t n_slots)
    : plan_(Plan::build(defs)), dim_(dim) {
  build_items(items_schema, item_chunks);
  const size_t item_bytes = plan_.item.words() * 8 + plan_.item.n_floats * 4 +
                            (plan_.has_dot ? size_t(dim) * 4 : 0);
  prefetch_ = size_t(n_items_) * item_bytes > (size_t{2} << 20);  // a core's L2 on current x86
  if (!plan_.has_dot) return;  // vectors are not read: not copied
  if (item_vectors == nullptr)
    throw ValueError("item_vectors: required by " + plan_.dot_user + ", got None");
  if (dim < 1) throw ValueError("item_vectors: expected at least 1 column");
  if (slots != nullptr) {
    if (n_slots != n_items_)
      throw ValueError("vector_rows: expected " + std::to_string(n_items_) + " values (one per item), got " +
                       std::to_string(n_slots));
    for (int64_t i = 0; i < n_slots; ++i)
      if (slots[i] < -1 || slots[i] >= vector_rows)
        throw ValueError("vector_rows: item " + std::to_string(i) + " names row " + std::to_string(slots[i]) +
                         " of item_vectors' " + std::to_string(vector_rows) + " (or -1: no vector)");
    slots_.assign(slots, slots + n_slots);
    zero_vector_.assign(size_t(dim), 0.0f);
  } else if (vector_rows != n_items_) {
    throw ValueError("item_vectors: expected " + std::to_string(n_items_) +
                     " rows (one per item), got " + std::to_string(vector_rows));
  }
  const int64_t bad = first_non_finite(item_vectors, vector_rows * dim);
  if (bad >= 0)
    throw ValueError("item_vectors: row " + std::to_string(bad / dim) + " contains NaN or infinity");
  if (vectors_owner) {
    vectors_ = item_vectors;
    vectors_owner_ = std::move(vectors_owner);
  } else {
    owned_vectors_.assign(item_vectors, item_vectors + vector_rows * dim);
    vectors_ = owned_vectors_.data();
  }
}

void Assembler::build_items(const ArrowSchema& schema, const std::vector<const ArrowArray*>& chunks) {
  const std::vector<std::string> names =
      prefixed("items", [&] { return arrow::struct_names(schema); });
  // Types first, on the schema: every chunk shares it.
  const auto& columns = plan_.item_columns();
  std::vector<int> child(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    const Input& in = columns[c];
    const std::string& user = in.number_slot >= 0 ? in.number_user : in.code_user;
    child[c] = find_column(names, in.name);
    if (child[c] < 0)
      throw ValueError("items: no column '" + in.name + "' (read by " + user + "); the table has " +
                       listing(names));
    const std::string where = "items: column '" + in.name + "'";
    const ValueType type = prefixed(where + " (read by " + user + ")",
                                    [&] { return arrow::column_type(*schema.children[child[c]]); });
    if (in.code_slot >= 0 && is_float(type))
      throw TypeError(category_type_error(where, type, in.code_user, false));
  }
  for (const ArrowArray* chunk : chunks) n_items_ += chunk->length;
  const SidePlan& side = plan_.item;
  item_words_.resize(size_t(n_items_) * side.words());
  item_floats_.resize(size_t(n_items_) * side.n_floats);

  const int id_child = find_column(names, "item_id");
  bool ids_usable = id_child >= 0;
  if (id_child < 0) {
    item_id_problem_ = "the item table has no item_id column";
  } else {
    const char* format = schema.children[id_child]->format;
    ValueType type = ValueType::f64;
    try {
      type = arrow::column_type(*schema.children[id_child]);
    } catch (const std::exception&) {
    }
    if (is_float(type)) {
      item_id_problem_ = "the item table's item_id column is " + describe_format(format) +
                         ", not integer";
      ids_usable = false;
    } else {
      item_ids_.resize(size_t(n_items_));
    }
  }

  // Item by item: its raw record from the columns, then derive() it into the store.
  std::vector<uint64_t> raw(side.raw.width());
  std::vector<NullableColumn> views(columns.size());
  int64_t row0 = 0;
  for (const ArrowArray* chunk : chunks) {
    check_batch(schema, *chunk, "items");
    const int64_t length = chunk->length;
    for (size_t c = 0; c < columns.size(); ++c)
      views[c] = prefixed("items: column '" + columns[c].name + "'", [&] {
        return nullable_column(*schema.children[child[c]], *chunk->children[child[c]], chunk->offset,
                               length, false);
      });
    for (int64_t r = 0; r < length; ++r) {
      clear_record(raw.data(), side.raw);
      for (size_t c = 0; c < columns.size(); ++c) {
        const NullableColumn& col = views[c];
        if (!col.valid(r)) continue;  // a null is missing: NaN / no validity bit
        if (columns[c].number_slot >= 0)
          put_number(raw.data(), side.raw, uint32_t(columns[c].number_slot), col.number(r));
        if (columns[c].code_slot >= 0)
          put_code(raw.data(), side.raw, uint32_t(columns[c].code_slot), col.code(r));
      }
      const size_t item = size_t(row0 + r);
      derive(side, raw.data(), item_words_.data() + item * side.words(),
             item_floats_.data() + item * side.n_floats);
    }
    if (ids_usable) {
      const NullableColumn ids = prefixed("items: column 'item_id'", [&] {
        return nullable_column(*schema.children[id_child], *chunk->children[id_child], chunk->offset,
                               length, false);
      });
      for (int64_t r = 0; r < length; ++r) {
        if (!ids.valid(r)) {
          item_id_problem_ = "the item table's item_id column is null at row " + std::to_string(row0 + r);
          ids_usable = false;
          item_ids_.clear();
          break;
        }
        item_ids_[size_t(row0 + r)] = ids.code(r);
      }
    }
    row0 += length;
  }
}

const KeyIndex& Assembler::item_id_index() const {
  std::lock_guard<std::mutex> lock(id_index_mutex_);
  if (!id_index_) {
    auto index = std::make_shared<KeyIndex>();
    index->build(item_ids_.data(), n_items_);
    // The index keeps the last row of a repeated id: any other row is a duplicate.
    for (int64_t r = 0; r < n_items_; ++r) {
      const int64_t last = index->find(item_ids_.data(), item_ids_[size_t(r)]);
      if (last != r)
        throw ValueError("items: item_id " + std::to_string(item_ids_[size_t(r)]) +
                         " appears at rows " + std::to_string(r) + " and " + std::to_string(last));
    }
    id_index_ = std::move(index);
  }
  return *id_index_;
}

// ---- online ----------------------------------------------------------------

void Assembler::assemble(const int64_t* rows, size_t n, const RequestValues& request,
                         float* out) const {
  for (size_t i = 0; i < n; ++i)
    if (rows[i] < 0 || rows[i] >= n_items_)
      throw ValueError("rows[" + std::to_string(i) + "]: " + std::to_string(rows[i]) +
                       " is out of range for an item table of " + std::to_string(n_items_) + " rows");
  const float* user_vector = nullptr;
  if (plan_.has_dot && request.user_vector() != nullptr) {
    const int64_t bad = first_non_finite(request.user_vector(), dim_);
    if (bad >= 0)
      throw ValueError("request['user_vector']: element " + std::to_string(bad) +
                       " is NaN or infinite");
    user_vector = request.user_vector();
  }
  // The request side, derived once for every row.
  std::vector<uint64_t> words(plan_.request.words());
  std::vector<float> floats(plan_.request.n_floats);
  derive(plan_.request, request.record(), words.data(), floats.data());
  const size_t width = plan_.n_features();
  RowInput block[kRowBlock];
  for (size_t first = 0; first < n; first += kRowBlock) {
    const size_t count = std::min(kRowBlock, n - first);
    for (size_t i = 0; i < count; ++i) {
      set_item(block[i], rows[first + i]);
      block[i].request = {words.data(), floats.data()};
      block[i].maps = request.maps();
      block[i].user_vector = user_vector;
    }
    assemble_rows(plan_, dim_, block, count, out + first * width);
  }
}

// ---- offline ---------------------------------------------------------------

OfflineTable Assembler::prepare_offline(const ArrowSchema& schema,
                                        const std::vector<const ArrowArray*>& chunks) const {
  OfflineTable table;
  const std::vector<std::string> names =
      prefixed("table", [&] { return arrow::struct_names(schema); });
  const int row_child = find_column(names, "item_row");
  const int id_child = find_column(names, "item_id");
  if (row_child < 0 && id_child < 0)
    throw ValueError("table: expected an item_row (int64) or item_id (uint64) column naming each "
                     "row's item; the table has " + listing(names));
  table.by_item_id = row_child < 0;
  const int item_child = table.by_item_id ? id_child : row_child;
  const std::string item_where = table.by_item_id ? "table: column 'item_id'" : "table: column 'item_row'";
  const ValueType item_type =
      prefixed(item_where, [&] { return arrow::column_type(*schema.children[item_child]); });
  if (is_float(item_type) || item_type == ValueType::boolean)
    throw TypeError(item_where + " is " + arrow::type_name(item_type) + ", expected integers");
  if (table.by_item_id) {
    if (!item_id_problem_.empty())
      throw ValueError("table: rows name their items by item_id, but " + item_id_problem_);
    item_id_index();  // built now, with the GIL released by the caller
  }

  // Per request field: which reader, after checking the column's type.
  const auto& fields = plan_.request_fields();
  std::vector<int> field_child(fields.size());
  std::vector<Reader> reader(fields.size());
  for (size_t f = 0; f < fields.size(); ++f) {
    const Input& in = fields[f];
    const std::string& user =
        in.map_index >= 0 ? in.map_user : in.number_slot >= 0 ? in.number_user : in.code_user;
    field_child[f] = find_column(names, in.name);
    if (field_child[f] < 0)
      throw ValueError("table: no column '" + in.name + "' (the request field read by " + user +
                       "); give an all-null column if the field was never sent");
    const ArrowSchema& s = *schema.children[field_child[f]];
    const std::string where = "table: column '" + in.name + "'";
    if (s.format != nullptr && std::strcmp(s.format, "n") == 0) {
      reader[f] = Reader::scalar;  // Arrow's null type: missing on every row
    } else if (in.map_index >= 0) {
      reader[f] = Reader::map;  // typed when the views are made
    } else if (s.format != nullptr && is_string_format(s.format)) {
      if (in.number_slot >= 0)
        throw TypeError(where + " holds strings; " + in.number_user + " needs numbers");
      reader[f] = Reader::string;
    } else {
      const ValueType type = prefixed(where + " (read by " + user + ")",
                                      [&] { return arrow::column_type(s); });
      if (in.code_slot >= 0 && is_float(type))
        throw TypeError(category_type_error(where, type, in.code_user, true));
      reader[f] = Reader::scalar;
    }
  }
  int vector_child = -1;
  if (plan_.has_dot) {
    vector_child = find_column(names, "user_vector");
    if (vector_child < 0)
      throw ValueError("table: no column 'user_vector' (read by " + plan_.dot_user +
                       "); give FixedSizeList<float32>[" + std::to_string(dim_) +
                       "], null where the request had none");
    const arrow::MatrixType type =
        prefixed("table: column 'user_vector'", [&] { return arrow::matrix_type(*schema.children[vector_child]); });
    if (type.dim != dim_)
      throw ValueError("table: column 'user_vector' has " + std::to_string(type.dim) +
                       " values per row, the item vectors " + std::to_string(dim_));
  }

  for (const ArrowArray* chunk : chunks) {
    check_batch(schema, *chunk, "table");
    OfflineChunk c;
    c.length = chunk->length;
    const int64_t start = chunk->offset;
    c.item = prefixed(item_where, [&] {
      return nullable_column(*schema.children[item_child], *chunk->children[item_child], start,
                             c.length, false);
    });
    c.reader = reader;
    c.scalars.resize(fields.size());
    c.strings.resize(fields.size());
    c.maps.resize(fields.size());
    for (size_t f = 0; f < fields.size(); ++f) {
      const ArrowSchema& s = *schema.children[field_child[f]];
      const ArrowArray& a = *chunk->children[field_child[f]];
      prefixed("table: column '" + fields[f].name + "'", [&] {
        if (reader[f] == Reader::scalar) c.scalars[f] = nullable_column(s, a, start, c.length, true);
        else if (reader[f] == Reader::string) c.strings[f] = string_column(s, a, start, c.length);
        else c.maps[f] = map_column(s, a, start, c.length);
      });
    }
    if (vector_child >= 0) {
      c.has_user_vectors = true;
      c.user_vectors = prefixed("table: column 'user_vector'", [&] {
        return vector_column(*schema.children[vector_child], *chunk->children[vector_child], start,
                             c.length);
      });
    }
    table.rows += c.length;
    table.chunks.push_back(std::move(c));
  }
  return table;
}

void Assembler::assemble_offline(const OfflineTable& table, int threads, float* out) const {
  parallel_for(size_t(table.rows), threads, [&](size_t begin, size_t end) {
    assemble_offline_rows(table, int64_t(begin), int64_t(end), out);
  });
}

namespace {

// The lookup maps' indexes for one worker. Logged rows of one request repeat
// its maps, so a row whose keys equal the previous row's reuses that index.
// A ring of kRowBlock + 1 indexes per map: the rows of one block hold at most
// kRowBlock new ones plus the one carried over, so none is rebuilt while a
// row of the block still points at it.
class MapIndexes {
 public:
  explicit MapIndexes(size_t n_maps) : rings_(n_maps, std::vector<Entry>(kRowBlock + 1)), current_(n_maps, 0) {}

  const KeyIndex* index_for(size_t map, const MapView& view) {
    std::vector<Entry>& ring = rings_[map];
    size_t& current = current_[map];
    Entry* e = &ring[current];
    if (e->built && e->keys.size() == size_t(view.size) && equal_words(e->keys.data(), view.keys, view.size))
      return &e->index;
    current = (current + 1) % ring.size();
    e = &ring[current];
    e->keys.resize(size_t(view.size));
    for (int64_t i = 0; i < view.size; ++i) e->keys[size_t(i)] = load_u64(view.keys, i);
    e->index.build(e->keys.data(), view.size);
    e->built = true;
    return &e->index;
  }

 private:
  struct Entry {
    std::vector<uint64_t> keys;
    KeyIndex index;
    bool built = false;
  };
  std::vector<std::vector<Entry>> rings_;
  std::vector<size_t> current_;
};

}  // namespace

void Assembler::assemble_offline_rows(const OfflineTable& table, int64_t begin, int64_t end,
                                      float* out) const {
  const auto& fields = plan_.request_fields();
  const RecordLayout& layout = plan_.request.raw;
  const SidePlan& side = plan_.request;
  const size_t n_maps = plan_.n_maps;
  // One raw record, then per row of a block: its derived request, maps and user vector.
  std::vector<uint64_t> raw(layout.width());
  std::vector<uint64_t> words(kRowBlock * side.words());
  std::vector<float> floats(kRowBlock * side.n_floats);
  std::vector<MapView> maps(kRowBlock * n_maps);
  std::vector<float> user_vectors(kRowBlock * size_t(dim_));
  MapIndexes indexes(n_maps);
  // Logged rows of one request repeat its values. A string equal to the
  // field's previous one keeps its code (comparing bytes is ~4x cheaper than
  // FNV's serial multiply per byte); a raw request equal to the previous
  // row's keeps its derived record (derive() is a function of it alone).
  struct LastString {
    const char* bytes = nullptr;
    size_t size = 0;
    uint64_t code = 0;
    bool set = false;
  };
  std::vector<LastString> last_strings(fields.size());
  std::vector<uint64_t> previous_raw(layout.width());
  bool have_previous = false;
  size_t previous_slot = 0;
  RowInput block[kRowBlock];
  const KeyIndex* ids = table.by_item_id ? &item_id_index() : nullptr;
  const char* item_name = table.by_item_id ? "item_id" : "item_row";
  const size_t width = plan_.n_features();

  int64_t chunk_begin = 0;
  for (const OfflineChunk& chunk : table.chunks) {
    const int64_t chunk_end = chunk_begin + chunk.length;
    const int64_t lo = std::max(begin, chunk_begin), hi = std::min(end, chunk_end);
    for (int64_t first = lo; first < hi; first += int64_t(kRowBlock)) {
      const size_t count = size_t(std::min<int64_t>(int64_t(kRowBlock), hi - first));
      for (size_t i = 0; i < count; ++i) {
        const int64_t row = first + int64_t(i);
        const int64_t r = row - chunk_begin;
        // The item.
        if (!chunk.item.valid(r))
          throw ValueError("table: " + std::string(item_name) + " is null at row " + std::to_string(row));
        const uint64_t code = chunk.item.code(r);
        int64_t item;
        if (ids != nullptr) {
          item = ids->find(item_ids_.data(), code);
          if (item < 0)
            throw ValueError("table: item_id " + std::to_string(code) + " at row " +
                             std::to_string(row) + " is not in the item table");
        } else {
          const bool too_big = is_unsigned(chunk.item.type) && code > uint64_t(std::numeric_limits<int64_t>::max());
          item = too_big ? -1 : int64_t(code);
          if (item < 0 || item >= n_items_)
            throw ValueError("table: item_row " +
                             (is_unsigned(chunk.item.type) ? std::to_string(code) : std::to_string(int64_t(code))) +
                             " at row " + std::to_string(row) + " is out of range for an item table of " +
                             std::to_string(n_items_) + " rows");
        }
        // The request, as the online path encodes a request dict.
        clear_record(raw.data(), layout);
        MapView* row_maps = maps.data() + i * n_maps;
        for (size_t f = 0; f < fields.size(); ++f) {
          const Input& in = fields[f];
          switch (chunk.reader[f]) {
            case Reader::scalar: {
              const NullableColumn& col = chunk.scalars[f];
              if (!col.valid(r)) break;
              if (in.number_slot >= 0) put_number(raw.data(), layout, uint32_t(in.number_slot), col.number(r));
              if (in.code_slot >= 0) put_code(raw.data(), layout, uint32_t(in.code_slot), col.code(r));
              break;
            }
            case Reader::string: {
              const StringColumn& col = chunk.strings[f];
              if (!col.valid(r)) break;
              const std::string_view s = col.get(r);
              LastString& last = last_strings[f];
              if (!(last.set && last.size == s.size() && equal_bytes(last.bytes, s.data(), s.size()))) {
                last = {s.data(), s.size(), fnv1a64(s.data(), s.size()), true};
              }
              put_code(raw.data(), layout, uint32_t(in.code_slot), last.code);
              break;
            }
            case Reader::map: {
              MapView map = chunk.maps[f].get(r);
              if (map.size > kScanMapSize) map.index = indexes.index_for(size_t(in.map_index), map);
              row_maps[in.map_index] = map;
              break;
            }
          }
        }
        uint64_t* row_words = words.data() + i * side.words();
        float* row_floats = floats.data() + i * side.n_floats;
        if (have_previous && equal_words(raw.data(), previous_raw.data(), int64_t(raw.size()))) {
          if (previous_slot != i) {  // the previous row's slot is intact: this block has not reached it
            const uint64_t* w = words.data() + previous_slot * side.words();
            const float* x = floats.data() + previous_slot * side.n_floats;
            for (uint32_t k = 0; k < side.words(); ++k) row_words[k] = w[k];
            for (uint32_t k = 0; k < side.n_floats; ++k) row_floats[k] = x[k];
          }
        } else {
          derive(side, raw.data(), row_words, row_floats);
          for (size_t k = 0; k < raw.size(); ++k) previous_raw[k] = raw[k];
          have_previous = true;
        }
        previous_slot = i;
        set_item(block[i], item);
        block[i].request = {row_words, row_floats};
        block[i].maps = row_maps;
        block[i].user_vector = nullptr;
        if (plan_.has_dot && chunk.user_vectors.valid(r)) {
          const float* v = chunk.user_vectors.get(r, user_vectors.data() + i * size_t(dim_));
          const int64_t bad = first_non_finite(v, dim_);
          if (bad >= 0)
            throw ValueError("table: user_vector at row " + std::to_string(row) + ": element " +
                             std::to_string(bad) + " is NaN or infinite");
          block[i].user_vector = v;
        }
      }
      assemble_rows(plan_, dim_, block, count, out + first * int64_t(width));
    }
    chunk_begin = chunk_end;
  }
}

}  // namespace engine::features
