// The forest walk with AVX-512: sixteen lanes step together, node fields and
// feature values fetched with gathers, the branch chosen by mask blend.
#include <immintrin.h>

#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {
namespace {

struct GatherWalker {
  static void full(const Forest& f, const int32_t* K, const int32_t* row, uint32_t* idx,
                   uint32_t depth, bool special) {
    if (special) return walk<true, kLanes>(f, K, row, idx, kLanes, depth);
    const int* fields = reinterpret_cast<const int*>(f.nodes());  // 4 ints per node
    const __m512i rows = _mm512_load_si512(row);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i at = _mm512_load_si512(idx);
    for (uint32_t s = 0; s < depth; ++s) {
      const __m512i slot = _mm512_slli_epi32(at, 2);
      const __m512i column = _mm512_i32gather_epi32(slot, fields, 4);
      const __m512i threshold = _mm512_i32gather_epi32(slot, fields + 1, 4);
      const __m512i left = _mm512_i32gather_epi32(slot, fields + 2, 4);
      const __m512i key = _mm512_i32gather_epi32(_mm512_add_epi32(rows, column), K, 4);
      const __mmask16 go_right = _mm512_cmpge_epi32_mask(key, threshold);
      const __m512i next = _mm512_mask_add_epi32(left, go_right, left, one);
      const __mmask16 moved = _mm512_cmpneq_epi32_mask(next, at);
      at = next;
      if (!moved) break;
    }
    _mm512_store_si512(idx, at);
  }
};

}  // namespace

const EvalKernels& avx512_eval() {
  static const EvalKernels table{simd::Level::avx512, "avx512", &accumulate<GatherWalker>};
  return table;
}

}  // namespace engine::trees
