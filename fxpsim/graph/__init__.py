"""The network IR and its front-ends (YAML models, torch.fx import, SCALE-Sim topologies).

``load_model("resnet20")`` returns a :class:`Graph`. Importing this package does not import
torch (only tracing a ``file.py:Class`` model does).
"""

from fxpsim.graph.build import NodeSpec, build_graph
from fxpsim.graph.ir import (
    BatchNormAttrs,
    Conv2dAttrs,
    Graph,
    InputAttrs,
    LinearAttrs,
    NoAttrs,
    Node,
    OperandFormats,
    PoolAttrs,
)
from fxpsim.graph.resolve import ModelInfo, list_models, load_model

__all__ = [
    "BatchNormAttrs", "Conv2dAttrs", "Graph", "InputAttrs", "LinearAttrs", "ModelInfo", "Node",
    "NoAttrs", "NodeSpec", "OperandFormats", "PoolAttrs", "build_graph", "list_models",
    "load_model",
]
