"""Default run names: readable, deterministic, and different for different runs.

``edge_npu-vgg16-train-sgd-b32-1a2b3c4d``: hw, model, phase, algo (training only) and batch
for people, then 8 hex digits of a digest of everything that decides the result: the
resolved hwconfig (its digest covers every override), the model (source, input shape,
classes, size) and every run option except where and how the report is written (``out``,
``name``, ``format``). The same configuration always gets the same folder (a rerun replaces
its own report); any other configuration gets another one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: run options that choose where/how reports are written, not what is simulated
NOT_IN_DIGEST: tuple[str, ...] = ("out", "name", "format")


def run_digest(run: Any, hw_digest: str, graph: Any) -> str:
    """8 hex digits identifying the resolved configuration of a run."""
    # hw/model are named by what they resolved to (hw=edge_npu and hw=edge_npu.yaml are the
    # same accelerator), so the references themselves are left out
    skip = (*NOT_IN_DIGEST, "hw", "model")
    options = {k: v for k, v in run.model_dump(mode="json").items() if k not in skip}
    model = {"source": graph.source, "name": graph.name,
             "input_shape": list(graph.input_shape), "num_classes": graph.num_classes,
             "macs": graph.macs, "params": graph.params}
    text = json.dumps({"hw": hw_digest, "model": model, "run": options}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def run_name(hw_name: str, model_name: str, phase: str, algo: str, batch: int,
             digest: str = "") -> str:
    """Deterministic default run name (no timestamps: same inputs, same folder)."""
    algo_part = f"-{algo}" if phase == "train" else ""
    tail = f"-{digest}" if digest else ""
    return f"{hw_name}-{model_name}-{phase}{algo_part}-b{batch}{tail}"
