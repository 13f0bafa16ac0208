"""Can TensorFlow.js run this model? Two checks, each naming what is missing.

1. Graph ops: the SavedModel is frozen the way tensorflowjs_converter freezes it, and every
   node's op is looked up in the op list shipped inside the tensorflowjs package (the ops its
   graph-model executor implements).
2. Kernels: the converted model is run once under Node on the wasm backend (converter/parity.mjs
   --kernels); TF.js reports the kernels it used and which one the backend lacks. An op can be
   in the op list and still have no wasm kernel (Einsum, FFT, ...).
"""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

TFJS_UNSUPPORTED = re.compile(r"Unsupported Ops in the model (?:before|after) optimization\s*(?P<ops>.*)", re.S)


def import_tensorflowjs():
    """tensorflowjs, imported without the TF-DF banner, which needs IPython when stdout is
    not a terminal (under pytest, in CI, piped)."""
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    import tensorflowjs

    return tensorflowjs


class UnsupportedOps(ValueError):
    """The model uses operations TensorFlow.js cannot run; `ops` maps each to its graph nodes."""

    def __init__(self, ops: dict[str, list[str]], where: str, layer_names=()):
        self.ops = ops
        self.where = where
        listed = "; ".join(f"{op} (in {', '.join(_layers(nodes, layer_names)) or 'the graph'})" for op, nodes in sorted(ops.items()))
        super().__init__(
            f"the model uses {'an operation' if len(ops) == 1 else 'operations'} that {where} cannot run: {listed}. "
            "Replace the layer with one built from supported ops (keras.layers / keras.ops that TF.js implements) "
            "and retrain or re-export."
        )


def _layers(nodes: list[str], layer_names=(), limit: int = 3) -> list[str]:
    """The Keras layers that graph nodes belong to. A node is named like
    'StatefulPartitionedCall/tiny_1/odd_layer_1/erfinv/Erfinv' (Keras adds _1 suffixes)."""
    known = set(layer_names)
    found = []
    for node in nodes:
        parts = [re.sub(r"_\d+$", "", p) for p in node.split("/") if p and "PartitionedCall" not in p]
        hits = [p for p in parts if p in known]
        name = hits[-1] if hits else (parts[-2] if len(parts) >= 2 else None)
        if name and name not in found:
            found.append(name)
    return [f"layer {n!r}" for n in found[:limit]]


@lru_cache(maxsize=1)
def tfjs_graph_ops() -> frozenset[str]:
    """The TensorFlow op names TF.js graph models support, from tensorflowjs/op_list/*.json."""
    folder = Path(import_tensorflowjs().__file__).parent / "op_list"
    names = set()
    for f in sorted(folder.glob("*.json")):
        names.update(op["tfOpName"] for op in json.loads(f.read_text()))
    if not names:
        raise RuntimeError(f"no op lists found in {folder}; is tensorflowjs installed correctly?")
    return frozenset(names)


def frozen_graph_ops(saved_model_dir) -> dict[str, list[str]]:
    """op -> node names, for the SavedModel's serving signature frozen as the converter does."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(saved_model_dir))
    if "serving_default" not in loaded.signatures:
        raise ValueError(f"{saved_model_dir} has no serving_default signature to convert")
    graph_def = convert_variables_to_constants_v2(loaded.signatures["serving_default"]).graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    ops: dict[str, list[str]] = {}
    for n in nodes:
        ops.setdefault(n.op, []).append(n.name)
    return ops


def check_graph_ops(saved_model_dir, layer_names=()) -> list[str]:
    """The ops the frozen graph uses; raises UnsupportedOps naming any TF.js lacks (and the
    layers, among `layer_names`, that use them)."""
    ops = frozen_graph_ops(saved_model_dir)
    supported = tfjs_graph_ops()
    missing = {op: nodes for op, nodes in ops.items() if op not in supported}
    if missing:
        raise UnsupportedOps(missing, "TensorFlow.js", layer_names)
    return sorted(ops)


def from_converter_error(error: Exception) -> UnsupportedOps | None:
    """tensorflowjs_converter's own 'Unsupported Ops in the model ...' as an UnsupportedOps."""
    m = TFJS_UNSUPPORTED.search(str(error))
    if not m:
        return None
    names = [s.strip() for s in m["ops"].replace("\n", ",").split(",") if s.strip()]
    return UnsupportedOps({n: [] for n in names}, "TensorFlow.js")


def check_wasm_kernels(tfjs_dir, backend: str = "wasm", layer_names=()) -> list[str]:
    """The kernels one prediction of the converted model runs on `backend`; raises
    UnsupportedOps naming a kernel the backend lacks. Needs Node (see converter.parity)."""
    from converter.parity import run_node

    out = run_node(["--model", str(tfjs_dir), "--backend", backend, "--kernels"])
    missing = out.get("missing_kernels") or []
    if missing:
        # Kernel names mostly equal op names: find the nodes, to name their layers.
        nodes = json.loads((Path(tfjs_dir) / "model.json").read_text())["modelTopology"].get("node", [])
        found = {k: [n["name"] for n in nodes if n.get("op", "").lstrip("_").lower() == k.lower()] for k in missing}
        raise UnsupportedOps(found, f"the TensorFlow.js {backend} backend", layer_names)
    return out["kernels_used"]
