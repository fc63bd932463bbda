// The impression log's queue between the request threads and the writer:
// records in segments of at most kSegmentRecords, so that an append never
// grows (reallocates and copies) a buffer of a whole batch. Such a copy of a
// few MB, with the page faults of its new memory, took up to 1.4 ms of the
// request that happened to append at the wrong moment. Batches the writer
// has written come back as spare segments, already allocated and paged in.
#pragma once
#include <cstddef>
#include <deque>
#include <vector>

#include "impressions/columns.hpp"

namespace engine::impressions {

class Staging {
 public:
  static constexpr size_t kSegmentRecords = 64;
  static constexpr size_t kMaxSpares = 16;                       // a batch of 1,024 records
  static constexpr size_t kMaxSpareBytes = size_t{16} << 20;     // larger segments are freed

  void append(const RecordView& r);
  size_t size() const { return records_; }
  size_t nbytes() const { return bytes_; }
  // Moves out the oldest records: at most max_records, within max_bytes (at
  // least one when there is one). Whole segments move; a segment only
  // partly taken is split (a copy of at most kSegmentRecords records).
  Staging take(size_t max_records, size_t max_bytes);
  // Every record in one Columns (moved when there is one segment, else
  // copied); the emptied segments are added to `emptied`.
  Columns concatenate(std::vector<Columns>& emptied);
  // Keeps a used segment's memory for later appends (or frees it).
  void recycle(Columns&& used);

 private:
  std::deque<Columns> segments_;  // oldest first; appends go to the last
  std::vector<Columns> spares_;
  size_t records_ = 0, bytes_ = 0;
};

}  // namespace engine::impressions
