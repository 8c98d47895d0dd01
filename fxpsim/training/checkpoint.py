"""Checkpoints of a trained network (``checkpoint=``): save after training, load for
``phase=infer``.

A checkpoint is one ``torch.save`` file holding plain data only (loaded with
``weights_only=True``, so loading never runs code): a format tag, the algorithm, model name,
the numerics the network was trained with (bits and roundings), the step count and seed, and
the QNet's ``state_dict`` (weights, BN statistics, and for Octo the compensation tensors).
The stored weights are the ones the forward quantizes (LAQ/FB: ŵ = α·q), so evaluating the
loaded network runs the same integer GEMMs as the training run's final evaluation: the same
test accuracy, bit for bit.

Writing goes to a temporary file in the same folder, then ``os.replace``: an interrupted run
never leaves half a checkpoint. An existing file is only replaced when it is itself an fxpsim
checkpoint (fxpsim never deletes a file it did not write).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fxpsim.errors import FxpsimError

FORMAT = "fxpsim.checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    algo: str
    model: str
    numerics: dict[str, Any]  # w_bits, a_bits, g_bits, rounding_* as in the RunConfig
    steps: int
    seed: int
    state: dict[str, torch.Tensor]
    eval_batch: int = 0  # batch size of the training run's evaluation (0: unknown)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable file is "not a checkpoint"
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def check_target(path: str | Path) -> None:
    """Raise FxpsimError now (before training) if ``path`` could not take a checkpoint:
    an existing folder or a file that is not an fxpsim checkpoint."""
    p = Path(path)
    if p.exists() and (p.is_dir() or _read(p) is None):
        raise FxpsimError(f"{p}: exists and is not an fxpsim checkpoint (checkpoint= will "
                          "not overwrite it)")


def save_checkpoint(path: str | Path, ck: Checkpoint) -> Path:
    """Write ``ck`` to ``path`` atomically (FxpsimError if ``path`` exists and is not an
    fxpsim checkpoint, or cannot be written)."""
    p = Path(path)
    check_target(p)
    data = {"format": FORMAT, "algo": ck.algo, "model": ck.model, "numerics": ck.numerics,
            "steps": ck.steps, "seed": ck.seed, "eval_batch": ck.eval_batch,
            "state": {k: v.detach().clone() for k, v in ck.state.items()}}
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        os.close(fd)
        try:
            torch.save(data, tmp)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise FxpsimError(f"{p}: cannot write the checkpoint: {exc.strerror or exc}") from None
    return p


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint (FxpsimError naming the file when it is missing or not one)."""
    p = Path(path)
    if not p.is_file():
        raise FxpsimError(f"{p}: no such checkpoint file")
    data = _read(p)
    if data is None:
        raise FxpsimError(f"{p}: not an fxpsim checkpoint ({FORMAT})")
    return Checkpoint(str(data["algo"]), str(data["model"]), dict(data["numerics"]),
                      int(data["steps"]), int(data["seed"]), dict(data["state"]),
                      int(data.get("eval_batch", 0)))
