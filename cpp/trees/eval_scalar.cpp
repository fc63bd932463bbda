// The scalar forest walk: the reference the other levels are tested against.
#include "trees/eval.hpp"
#include "trees/walk.hpp"

namespace engine::trees {

const EvalKernels& scalar_eval() {
  static const EvalKernels table{simd::Level::scalar, "scalar", &accumulate};
  return table;
}

}  // namespace engine::trees
