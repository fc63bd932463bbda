#include "impressions/staging.hpp"

#include <utility>

namespace engine::impressions {

void Staging::append(const RecordView& r) {
  if (segments_.empty() || segments_.back().size() >= kSegmentRecords) {
    if (!spares_.empty()) {
      segments_.push_back(std::move(spares_.back()));
      spares_.pop_back();
    } else {
      segments_.emplace_back();
      if (segments_.size() > 1) segments_.back().reserve_like(segments_[segments_.size() - 2]);
    }
  }
  const size_t before = segments_.back().nbytes();
  segments_.back().append(r);
  ++records_;
  bytes_ += segments_.back().nbytes() - before;
}

Staging Staging::take(size_t max_records, size_t max_bytes) {
  Staging taken;
  while (!segments_.empty() && taken.records_ < max_records) {
    Columns& front = segments_.front();
    const bool first = taken.records_ == 0;  // the first record is taken whatever its size
    const size_t room = max_records - taken.records_;
    const size_t budget = first ? max_bytes : max_bytes > taken.bytes_ ? max_bytes - taken.bytes_ : 0;
    const bool whole = front.size() <= room && front.nbytes() <= budget;
    Columns part = whole ? std::move(front) : front.take_front(room, budget, first);
    if (whole || front.size() == 0) segments_.pop_front();
    taken.records_ += part.size();
    taken.bytes_ += part.nbytes();
    records_ -= part.size();
    bytes_ -= part.nbytes();
    if (part.size()) taken.segments_.push_back(std::move(part));
    if (!whole) break;  // the next record did not fit
  }
  return taken;
}

Columns Staging::concatenate(std::vector<Columns>& emptied) {
  Columns all;
  if (segments_.size() == 1) {
    all = std::move(segments_.front());
  } else {
    for (Columns& s : segments_) {
      all.append_range(s, 0, s.size());
      emptied.push_back(std::move(s));
    }
  }
  segments_.clear();
  records_ = bytes_ = 0;
  return all;
}

void Staging::recycle(Columns&& used) {
  if (spares_.size() >= kMaxSpares || used.capacity_bytes() > kMaxSpareBytes) return;
  used.clear();
  spares_.push_back(std::move(used));
}

}  // namespace engine::impressions
