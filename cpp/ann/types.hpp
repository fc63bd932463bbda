// Metric and storage kinds of a vector index.
#pragma once
#include <cstdint>
#include <string>

#include "common/errors.hpp"

namespace engine::ann {

// ip: score = <q, x>, higher is better. cos: ip over L2-normalised vectors.
// l2: reported score is the squared distance, lower is better; internally the
// search ranks by 2<q, x> - |x|^2, which orders rows the same way.
enum class Metric : uint8_t { ip = 0, cos = 1, l2 = 2 };
// How the partitioned (IVF) lists store their vectors. Exact scans and the
// re-ranking of f16 / i8 candidates always use the f32 originals.
enum class Storage : uint8_t { f32 = 0, f16 = 1, i8 = 2 };

inline Metric parse_metric(const std::string& s) {
  if (s == "ip") return Metric::ip;
  if (s == "cos") return Metric::cos;
  if (s == "l2") return Metric::l2;
  throw ValueError("metric: expected 'ip', 'cos' or 'l2', got '" + s + "'");
}
inline Storage parse_storage(const std::string& s) {
  if (s == "f32") return Storage::f32;
  if (s == "f16") return Storage::f16;
  if (s == "i8") return Storage::i8;
  throw ValueError("storage: expected 'f32', 'f16' or 'i8', got '" + s + "'");
}
inline const char* metric_name(Metric m) {
  return m == Metric::ip ? "ip" : m == Metric::cos ? "cos" : "l2";
}
inline const char* storage_name(Storage s) {
  return s == Storage::f32 ? "f32" : s == Storage::f16 ? "f16" : "i8";
}
inline size_t storage_bytes(Storage s) { return s == Storage::f32 ? 4 : s == Storage::f16 ? 2 : 1; }

}  // namespace engine::ann
