// Builds a Segment from rows: orders them by the cluster attribute, builds
// postings and the id lookup, and partitions them into IVF lists.
#pragma once
#include <cstdint>
#include <memory>

#include "ann/segment.hpp"

namespace engine::ann {

struct BuildInput {
  uint32_t dim = 0;
  Metric metric = Metric::ip;
  Storage storage = Storage::f32;
  size_t n = 0;
  const uint64_t* ids = nullptr;
  const float* vectors = nullptr;  // n * dim, already unit length for cos
  uint32_t n_columns = 0;
  const int64_t* attrs = nullptr;  // n_columns * n, column-major

  size_t nlist = 0;              // 0: about 4 * sqrt(n)
  size_t min_ivf_rows = 20000;   // smaller segments are scanned exactly
  // Reuse these centroids (and their calibrated nprobe) instead of training.
  std::shared_ptr<const Segment> centroid_source;
  const uint32_t* known_lists = nullptr;  // per input row: its list, or UINT32_MAX
  int threads = 1;
  uint64_t seed = 0;
};

std::shared_ptr<const Segment> build_segment(const BuildInput& in);

}  // namespace engine::ann
