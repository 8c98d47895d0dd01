"""What one ``fxpsim run`` produced: the inputs it resolved and the results of both planes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typing only: keeps this module import-light
    from fxpsim.config.load import LoadedHw
    from fxpsim.config.run import RunConfig
    from fxpsim.graph.ir import Graph
    from fxpsim.timing.simulate import TimingResult
    from fxpsim.training.infer import InferResult
    from fxpsim.training.result import TrainResult


@dataclass(frozen=True)
class RunOutcome:
    name: str  # run name, also the report folder's name
    run: RunConfig
    hw: LoadedHw
    graph: Graph
    timing: TimingResult
    training: TrainResult | None = None  # None: timing only (phase=infer, steps=0, epochs=0)
    #: the options as given (key, text), hw overrides included: summary.json records them
    options: tuple[tuple[str, str], ...] = ()
    inference: InferResult | None = None  # phase=infer with checkpoint=: bit-exact accuracy
