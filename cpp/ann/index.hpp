// The live vector index: an immutable snapshot of segments behind an atomic
// pointer. Searches take the snapshot current at their start; add() and
// remove() build a new snapshot and publish it in one step, so a search sees
// the old state or the new one, never a mixture.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ann/filter.hpp"
#include "ann/segment.hpp"
#include "ann/topk.hpp"

namespace engine::ann {

struct IndexOptions {
  uint32_t dim = 0;
  Metric metric = Metric::ip;
  Storage storage = Storage::f32;
  size_t nlist = 0;             // 0: about 4 * sqrt(rows) for the first IVF build
  size_t min_ivf_rows = 20000;  // segments below this are scanned exactly
  uint64_t seed = 0;
};

struct Snapshot {
  std::vector<std::string> columns;  // attribute names, fixed by the first add
  std::vector<SegmentView> segments;
  size_t live() const;
};

struct SearchRequest {
  const float* queries = nullptr;  // nq * dim
  size_t nq = 0;
  size_t k = 0;
  uint32_t nprobe = 0;  // 0: each segment's calibrated default
  bool exact = false;
  int threads = 1;
};

class Index {
 public:
  explicit Index(IndexOptions options);

  const IndexOptions& options() const { return options_; }
  std::shared_ptr<const Snapshot> snapshot() const;

  // attrs: columns.size() * n, column-major. The first add fixes the columns.
  void add(const uint64_t* ids, size_t n, const float* vectors, const std::vector<std::string>& columns,
           const int64_t* attrs, int threads);
  // Throws ValueError naming the first unknown id unless missing_ok; returns
  // how many rows were removed.
  size_t remove(const uint64_t* ids, size_t n, bool missing_ok);
  // Rebuilds everything live into one segment with freshly trained lists.
  void compact(int threads);

  // ids: nq * k (-1 pads), scores: nq * k (NaN pads); conditions name columns by index.
  void search(const SearchRequest& request, const FilterSpec& filter, int64_t* out_ids,
              float* out_scores) const;

  // Used by load(): replaces the contents with validated segments.
  void restore(std::vector<std::string> columns, std::vector<SegmentView> segments);
  int column_index(const std::string& name) const;

 private:
  void publish(std::shared_ptr<const Snapshot> next);
  // Query qi's hits as ids and reported scores (squared distances for l2).
  void write_hits(const Snapshot& snap, const TopK& top, const float* q, size_t qi, size_t k,
                  int64_t* out_ids, float* out_scores) const;
  std::shared_ptr<const Segment> merge(const std::vector<SegmentView>& parts, bool retrain,
                                       int threads) const;
  IndexOptions options_;
  mutable std::mutex current_mutex_;  // guards the pointer only, never held while working
  std::shared_ptr<const Snapshot> current_;
  std::mutex writer_mutex_;           // one writer at a time
};

}  // namespace engine::ann
