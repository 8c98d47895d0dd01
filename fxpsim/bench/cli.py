"""``fxpsim bench TARGET key=value ...``: dispatch to the benchmark modules (imported lazily,
so each target pulls in only the libraries it measures)."""

from __future__ import annotations

from fxpsim.errors import FxpsimError

TARGETS = ("arith", "schedule", "train", "sweep")


def bench(target: str, options: dict[str, str]) -> int:
    """Run benchmark ``target`` (one of :data:`TARGETS`) with its ``key=value`` options."""
    if target == "arith":
        from fxpsim.bench.arith import main

        return main(options)
    if target == "schedule":
        from fxpsim.bench.schedule import main as schedule_main

        return schedule_main(options)
    if target == "train":
        from fxpsim.bench.train import main as train_main

        return train_main(options)
    if target == "sweep":
        from fxpsim.bench.sweep import main as sweep_main

        return sweep_main(options)
    raise FxpsimError(f"bench: unknown target {target!r} (expected one of {', '.join(TARGETS)})")
