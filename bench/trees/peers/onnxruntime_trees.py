"""ONNX Runtime: the model converted by onnxmltools to a TreeEnsembleClassifier, one thread.

onnxmltools writes the binary classifier with ``post_transform=LOGISTIC``;
the benchmark sets it to ``NONE`` so that the second column of
``probabilities`` is the raw margin, like every other runtime returns. The
ONNX operator stores thresholds as float32, so LightGBM's float64
thresholds are rounded and a few rows may take another branch: the check
column reports how many.
"""

from __future__ import annotations

import os

import lightgbm
import onnx
import onnxmltools
import onnxruntime as ort
import xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from bench.trees.peers.base import Runtime

OUTPUT = "probabilities"  # (rows, 2): column 1 is the positive class's score


def convert(spec) -> onnx.ModelProto:
    """The model as an ONNX graph whose ``probabilities`` column 1 is the raw margin."""
    inputs = [("input", FloatTensorType([None, spec.n_features]))]
    path = os.fspath(spec.model_path)
    if spec.library == "lightgbm":
        onx = onnxmltools.convert_lightgbm(lightgbm.Booster(model_file=path),
                                           initial_types=inputs, zipmap=False)
    else:
        onx = onnxmltools.convert_xgboost(xgboost.Booster(model_file=path), initial_types=inputs)
    for attr in tree_ensemble(onx).attribute:
        if attr.name == "post_transform":
            attr.s = b"NONE"
    return onx


def tree_ensemble(onx: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in onx.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(nodes) != 1:
        raise ValueError(f"expected one TreeEnsemble node, got {[n.op_type for n in onx.graph.node]}")
    return nodes[0]


class OnnxRuntimeTrees(Runtime):
    library = "onnxruntime"
    label = "onnxruntime"

    def version(self) -> str:
        return f"{ort.__version__} (onnxmltools {onnxmltools.__version__})"

    def prepare(self, spec) -> None:
        path = self.cached_artefact(spec, "-raw.onnx",
                                    lambda tmp: tmp.write_bytes(convert(spec).SerializeToString()))
        onx = onnx.load(os.fspath(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(os.fspath(path), options,
                                            providers=["CPUExecutionProvider"])
        ml_opset = next((o.version for o in onx.opset_import if o.domain == "ai.onnx.ml"), "?")
        self.config = (f"onnxmltools.convert_lightgbm / _xgboost -> {tree_ensemble(onx).op_type} "
                       f"(ai.onnx.ml opset {ml_opset}, post_transform=NONE); InferenceSession("
                       "intra_op=1, inter_op=1).run(['probabilities'])[:, 1]")

    def predictor(self):
        session, name = self.session, self.session.get_inputs()[0].name

        def predict(X):
            return session.run([OUTPUT], {name: X})[0][:, 1]

        return predict
