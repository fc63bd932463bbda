// The value model's blend (engine/ranking/value_model.py) in one pass over a
// request's candidates: each term is its weight times a product of factors,
// the value their sum. A factor is a model head, the retrieval score, or an
// item column gathered at the candidates' rows. In numpy this was a gather
// per item column and ~10 array operations, each on caches the heads had
// just flushed (~35 us a request).
//
// The result equals ValueModel.evaluate bit for bit: the same float32
// operations in the same order (this file is compiled without contraction
// into fused multiply-adds), and numpy's promotions for integer columns
// (float32 x int64 is taken in float64, then rounded to float32).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace engine::rerank {

struct BlendFactor {
  enum class Kind : uint8_t { head, retrieval, f32_column, i64_column, bool_column };
  Kind kind = Kind::head;
  uint32_t head = 0;            // Kind::head: column of the heads matrix
  const void* column = nullptr; // item columns: one value per catalogue row
};

struct BlendTerm {
  float weight = 1.0f;
  std::vector<uint32_t> factors;  // indices into the blend's factors; at least one
};

class ValueBlend {
 public:
  ValueBlend(std::vector<BlendFactor> factors, std::vector<BlendTerm> terms, size_t n_items, size_t n_heads);

  // rows[j] (< n_items) of candidate j; heads n x n_heads and retrieval n,
  // float32. Writes total[j] and terms[t * n + j].
  void evaluate(size_t n, const int64_t* rows, const float* heads, const float* retrieval, float* total,
                float* terms) const;
  size_t n_terms() const { return terms_.size(); }
  size_t n_heads() const { return n_heads_; }
  size_t n_items() const { return n_items_; }

 private:
  std::vector<BlendFactor> factors_;
  std::vector<BlendTerm> terms_;
  size_t n_items_, n_heads_;
};

}  // namespace engine::rerank
