// The float rounding here is the contract (row.hpp): no contraction of
// a * b + c into an FMA, whatever the target. cpp/CMakeLists.txt builds this
// file with -ffp-contract=off (x86-64 has no FMA at baseline, so this only
// matters on targets that do, like arm64) and without GCC's rewriting of the
// short per-row copies into memmove calls, which cost more than the copies.
#include <cstring>

#include "features/row.hpp"

namespace engine::features {

namespace {

inline bool code_valid(const uint64_t* words, uint32_t code) {
  return (words[code >> 6] >> (code & 63)) & 1;
}

inline uint64_t raw_code(const uint64_t* raw, const RawRef& ref) {
  return slot_valid(raw, ref.slot) ? raw[ref.word] : kMissingCode;
}

float side_value(const SidePlan& side, const SideFeature& f, const uint64_t* raw) {
  const RawRef* refs = side.refs.data() + f.first;
  switch (f.kind) {
    case Kind::numeric: {
      const double v = as_number(raw[refs[0].word]);
      return v == v ? float(v) : f.fallback;
    }
    case Kind::bucket: {
      const double v = as_number(raw[refs[0].word]);
      if (v != v) return f.fallback;
      // upper bound: the boundaries are strictly increasing.
      const double* b = side.boundaries.data() + f.first_boundary;
      uint32_t lo = 0, hi = f.n_boundaries;
      while (lo < hi) {
        const uint32_t mid = (lo + hi) / 2;
        if (b[mid] <= v) lo = mid + 1;
        else hi = mid;
      }
      return float(lo);
    }
    case Kind::hashed:
      return float(int32_t(reduce_to(mix64(raw_code(raw, refs[0])), f.buckets)));
    case Kind::cross: {
      uint64_t h = 0;
      for (uint32_t i = 0; i < f.count; ++i) h ^= cross_term(raw_code(raw, refs[i]), refs[i].position);
      return float(int32_t(reduce_to(mix64(h), f.buckets)));
    }
    case Kind::match:
      return slot_valid(raw, refs[0].slot) && slot_valid(raw, refs[1].slot) &&
                     raw[refs[0].word] == raw[refs[1].word]
                 ? 1.0f
                 : 0.0f;
    case Kind::dot:
    case Kind::lookup:
      break;  // row ops only
  }
  return 0.0f;
}

// The output never overlaps the derived records: restrict lets the copy vectorise.
inline void copy_floats(const float* __restrict from, uint32_t count, float* __restrict to) {
  uint32_t k = 0;
  for (; k + 8 <= count; k += 8) std::memcpy(to + k, from + k, 8 * sizeof(float));
  for (; k < count; ++k) to[k] = from[k];
}

// The dot product in the order row.hpp defines (GCC vectorises the lanes).
inline float dot8(const float* a, const float* b, int64_t dim) {
  float lane[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  int64_t j = 0;
  for (; j + 8 <= dim; j += 8)
    for (int k = 0; k < 8; ++k) lane[k] += a[j + k] * b[j + k];
  for (int k = 0; j + k < dim; ++k) lane[k] += a[j + k] * b[j + k];
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

}  // namespace

void derive(const SidePlan& side, const uint64_t* raw, uint64_t* words, float* floats) {
  const uint32_t masks = side.code_masks();
  for (uint32_t m = 0; m < masks; ++m) words[m] = 0;
  for (const CodeOp& op : side.codes)
    if (slot_valid(raw, op.from.slot)) {
      words[masks + op.code] = raw[op.from.word];
      words[op.code >> 6] |= uint64_t{1} << (op.code & 63);
    } else {
      words[masks + op.code] = 0;
    }
  for (const PartOp& op : side.parts) {
    uint64_t h = 0;
    const RawRef* refs = side.refs.data() + op.first;
    for (uint32_t i = 0; i < op.count; ++i) h ^= cross_term(raw_code(raw, refs[i]), refs[i].position);
    words[op.word] = h;
  }
  for (const SideFeature& f : side.features) floats[f.out] = side_value(side, f, raw);
}

void assemble_rows(const Plan& plan, int64_t dim, const RowInput* rows, size_t n, float* out) {
  const size_t width = plan.n_features();
  // Bucket ids are < 2**24: converted through int32, which x86 does in one
  // instruction (uint64 -> float needs a branch).
  auto bucket = [](uint64_t h, uint64_t buckets) { return float(int32_t(reduce_to(h, buckets))); };
  for (size_t r = 0; r < n; ++r) {
    float* row = out + r * width;
    for (const FloatRun& run : plan.item.runs) copy_floats(rows[r].item.floats + run.from, run.count, row + run.out);
    for (const FloatRun& run : plan.request.runs)
      copy_floats(rows[r].request.floats + run.from, run.count, row + run.out);
  }
  for (const RowCross& op : plan.cross)
    for (size_t r = 0; r < n; ++r)
      out[r * width + op.out] =
          bucket(mix64(rows[r].item.words[op.item_word] ^ rows[r].request.words[op.request_word]),
                 op.buckets);
  for (const RowMatch& op : plan.match)
    for (size_t r = 0; r < n; ++r) {
      const uint64_t* item = rows[r].item.words;
      const uint64_t* request = rows[r].request.words;
      out[r * width + op.out] = code_valid(item, op.item.code) && code_valid(request, op.request.code) &&
                                        item[op.item.word] == request[op.request.word]
                                    ? 1.0f
                                    : 0.0f;
    }
  for (const RowLookup& op : plan.lookup)
    for (size_t r = 0; r < n; ++r) {
      const uint64_t* item = rows[r].item.words;
      const double v = code_valid(item, op.key.code) ? rows[r].maps[op.map].find(item[op.key.word])
                                                     : std::numeric_limits<double>::quiet_NaN();
      out[r * width + op.out] = v == v ? float(v) : op.fallback;
    }
  if (!plan.dot.empty())
    for (size_t r = 0; r < n; ++r) {
      const float v = rows[r].user_vector != nullptr ? dot8(rows[r].user_vector, rows[r].item_vector, dim)
                                                     : 0.0f;
      for (uint32_t column : plan.dot) out[r * width + column] = v;
    }
}

}  // namespace engine::features
