// The forest walk compiled for AVX-512 (walk.hpp says why it does not
// gather across lanes).
#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {

const EvalKernels& avx512_eval() {
  static const EvalKernels table{simd::Level::avx512, "avx512", &accumulate};
  return table;
}

}  // namespace engine::trees
