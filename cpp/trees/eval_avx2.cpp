// The forest walk compiled for AVX2: the same lane-interleaved walk, with
// the compiler free to use the wider instruction set around it.
#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {

const EvalKernels& avx2_eval() {
  static const EvalKernels table{simd::Level::avx2, "avx2", &accumulate};
  return table;
}

}  // namespace engine::trees
