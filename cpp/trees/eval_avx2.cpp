// The forest walk compiled for AVX2 (walk.hpp says why it does not gather
// across lanes).
#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {

const EvalKernels& avx2_eval() {
  static const EvalKernels table{simd::Level::avx2, "avx2", &accumulate};
  return table;
}

}  // namespace engine::trees
