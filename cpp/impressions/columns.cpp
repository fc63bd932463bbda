#include "impressions/columns.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "common/errors.hpp"

namespace engine::impressions {

namespace {

template <typename T>
void extend(std::vector<T>& out, const T* v, size_t n) {
  out.insert(out.end(), v, v + n);
}

// Appends offsets[begin..end] of src rebased onto dst's last offset.
void extend_offsets(std::vector<int64_t>& dst, const std::vector<int64_t>& src, size_t begin, size_t end) {
  const int64_t shift = dst.back() - src[begin];
  for (size_t i = begin + 1; i <= end; ++i) dst.push_back(src[i] + shift);
}

void extend_strings(StringColumn& dst, const StringColumn& src, size_t begin, size_t end) {
  extend_offsets(dst.offsets, src.offsets, begin, end);
  dst.data.append(src.data, size_t(src.offsets[begin]), size_t(src.offsets[end] - src.offsets[begin]));
}

template <typename T>
void extend_lists(ListColumn<T>& dst, const ListColumn<T>& src, size_t begin, size_t end) {
  extend_offsets(dst.offsets, src.offsets, begin, end);
  extend(dst.values, src.values.data() + src.offsets[begin], size_t(src.offsets[end] - src.offsets[begin]));
  extend(dst.valid, src.valid.data() + begin, end - begin);
}

template <typename T>
void extend_range(std::vector<T>& dst, const std::vector<T>& src, size_t begin, size_t end) {
  extend(dst, src.data() + begin, end - begin);
}

// rows x per_row values of one record must fit a batch's int32 offsets.
void check_values(const char* column, size_t rows, size_t per_row) {
  if (per_row && rows > Columns::kMaxRecordValues / per_row)
    throw ValueError(std::string(column) + ": more than 2**31 - 1 values in one record (an Arrow batch's int32 offsets)");
}

}  // namespace

void StringColumn::push(std::string_view s) {
  data.append(s);
  offsets.push_back(int64_t(data.size()));
}

template <typename T>
void ListColumn<T>::push(const T* v, size_t n) {
  extend(values, v, n);
  offsets.push_back(int64_t(values.size()));
  valid.push_back(1);
}

template <typename T>
void ListColumn<T>::push_null() {
  offsets.push_back(offsets.back());
  valid.push_back(0);
}

template struct ListColumn<float>;
template struct ListColumn<double>;

void Columns::append(const RecordView& r) {
  check_values("features", r.n, r.n_features);
  check_values("components", r.n, r.component_names.size());
  check_values("context", r.context.size(), 1);
  const size_t cells = r.n * r.n_features;

  request_id.push(r.request_id);
  timestamp_us.push_back(r.timestamp_us);
  user_id.push_back(r.has_user_id ? r.user_id : 0);
  user_id_valid.push_back(r.has_user_id);
  surface.push(r.surface);
  context.push(r.context);
  if (r.user_vector) user_vector.push(r.user_vector, r.user_vector_size);
  else user_vector.push_null();
  extend(item_ids, r.item_ids, r.n);
  extend(positions, r.positions, r.n);
  extend(value, r.value, r.n);
  item_offsets.push_back(int64_t(item_ids.size()));
  for (size_t c = 0; c < r.component_names.size(); ++c) {
    component_names.push(r.component_names[c]);
    component_values.push(r.component_values[c], r.n);
  }
  component_offsets.push_back(component_offsets.back() + int64_t(r.component_names.size()));
  n_features.push_back(int32_t(r.n_features));
  features.push(r.features, cells);
  names_slot.push_back(r.names_slot);
  if (r.propensities) propensities.push(r.propensities, r.n);
  else propensities.push_null();
  if (r.choice_probabilities) choice_probabilities.push(r.choice_probabilities, r.n);
  else choice_probabilities.push_null();
  bundle_version.push(r.bundle_version);
  model_versions.push(r.model_versions);

  // What the record adds to a batch (for the writer's batch-size cap).
  size_t bytes = r.request_id.size() + r.surface.size() + r.context.size() + r.bundle_version.size() +
                 r.model_versions.size() + 4 * r.user_vector_size + r.n * (8 + 4 + 4) +
                 4 * r.n * r.component_names.size() + 4 * cells +
                 (r.propensities ? 8 * r.n : 0) + (r.choice_probabilities ? 8 * r.n : 0) + 64;
  for (auto name : r.component_names) bytes += name.size() + 8;
  record_bytes_.push_back(bytes);
  nbytes_ += bytes;
}

// Calls f(mine, theirs) for every vector of the two objects' columns, and
// offsets(mine) for each offsets vector of this one (they start at {0}).
template <typename F, typename O>
void Columns::visit(const Columns& other, F&& f, O&& offsets) {
  auto strings = [&](StringColumn& s, const StringColumn& t) {
    f(s.offsets, t.offsets);
    f(s.data, t.data);
    offsets(s.offsets);
  };
  auto lists = [&](auto& l, const auto& t) {
    f(l.offsets, t.offsets);
    f(l.values, t.values);
    f(l.valid, t.valid);
    offsets(l.offsets);
  };
  strings(request_id, other.request_id);
  strings(surface, other.surface);
  strings(context, other.context);
  strings(bundle_version, other.bundle_version);
  strings(model_versions, other.model_versions);
  strings(component_names, other.component_names);
  lists(user_vector, other.user_vector);
  lists(component_values, other.component_values);
  lists(features, other.features);
  lists(propensities, other.propensities);
  lists(choice_probabilities, other.choice_probabilities);
  f(item_offsets, other.item_offsets);
  offsets(item_offsets);
  f(component_offsets, other.component_offsets);
  offsets(component_offsets);
  f(timestamp_us, other.timestamp_us);
  f(user_id, other.user_id);
  f(user_id_valid, other.user_id_valid);
  f(item_ids, other.item_ids);
  f(positions, other.positions);
  f(value, other.value);
  f(n_features, other.n_features);
  f(names_slot, other.names_slot);
  f(record_bytes_, other.record_bytes_);
}

void Columns::clear() {
  visit(*this, [](auto& mine, const auto&) { mine.clear(); }, [](std::vector<int64_t>& o) { o.push_back(0); });
  nbytes_ = 0;
}

void Columns::reserve_like(const Columns& other) {
  visit(other, [](auto& mine, const auto& theirs) { mine.reserve(theirs.size()); }, [](std::vector<int64_t>&) {});
}

size_t Columns::capacity_bytes() const {
  return features.values.capacity() * sizeof(float) + component_values.values.capacity() * sizeof(float) +
         item_ids.capacity() * 16 + context.data.capacity();
}

void Columns::append_range(const Columns& s, size_t begin, size_t end) {
  extend_strings(request_id, s.request_id, begin, end);
  extend_strings(surface, s.surface, begin, end);
  extend_strings(context, s.context, begin, end);
  extend_strings(bundle_version, s.bundle_version, begin, end);
  extend_strings(model_versions, s.model_versions, begin, end);
  extend_range(timestamp_us, s.timestamp_us, begin, end);
  extend_range(user_id, s.user_id, begin, end);
  extend_range(user_id_valid, s.user_id_valid, begin, end);
  extend_lists(user_vector, s.user_vector, begin, end);
  const auto i0 = size_t(s.item_offsets[begin]), i1 = size_t(s.item_offsets[end]);
  extend_offsets(item_offsets, s.item_offsets, begin, end);
  extend_range(item_ids, s.item_ids, i0, i1);
  extend_range(positions, s.positions, i0, i1);
  extend_range(value, s.value, i0, i1);
  const auto c0 = size_t(s.component_offsets[begin]), c1 = size_t(s.component_offsets[end]);
  extend_offsets(component_offsets, s.component_offsets, begin, end);
  extend_strings(component_names, s.component_names, c0, c1);
  extend_lists(component_values, s.component_values, c0, c1);
  extend_range(n_features, s.n_features, begin, end);
  extend_lists(features, s.features, begin, end);
  extend_range(names_slot, s.names_slot, begin, end);
  extend_lists(propensities, s.propensities, begin, end);
  extend_lists(choice_probabilities, s.choice_probabilities, begin, end);
  extend_range(record_bytes_, s.record_bytes_, begin, end);
  for (size_t i = begin; i < end; ++i) nbytes_ += s.record_bytes_[i];
}

Columns Columns::take_front(size_t max_records, size_t max_bytes, bool at_least_one) {
  size_t count = 0, bytes = 0;
  const size_t limit = std::min(max_records, size());
  while (count < limit && ((count == 0 && at_least_one) || bytes + record_bytes_[count] <= max_bytes))
    bytes += record_bytes_[count++];
  Columns taken;
  if (count == size()) {  // the usual case: the writer takes everything queued
    std::swap(taken, *this);
    return taken;
  }
  Columns rest;
  taken.append_range(*this, 0, count);
  rest.append_range(*this, count, size());
  *this = std::move(rest);
  return taken;
}

}  // namespace engine::impressions
