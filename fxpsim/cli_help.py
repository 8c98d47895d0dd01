"""``--help`` text of the commands that take run options (run, compare, sweep, check).

The key list is generated from the model that validates the options
(:class:`fxpsim.config.run.RunConfig` via :data:`fxpsim.config.run.RUN_KEYS`): the type and
range come from the field's annotation, the default from the field; only the one-line
meaning is written here (:data:`MEANING`, which a test keeps complete). Any command's
parser can show it: ``HelpParser(..., key_help=True)`` (built lazily, so ``fxpsim --help``
does not import pydantic).
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from fxpsim.cli import _Parser  # imported from the CLI's parser builder, so cli is loaded

#: one line per run key; a test checks every key of RUN_KEYS has one
MEANING: dict[str, str] = {
    "hw": "accelerator: a name under hwconfigs/, a .yaml path or a SCALE-Sim .cfg",
    "model": "built-in model name (fxpsim list), IR .yaml, SCALE-Sim .csv or file.py:Class",
    "phase": "train: a training step (and training for accuracy); infer: a forward pass",
    "algo": "training algorithm (see docs/algorithms.md)",
    "batch": "batch size of the simulated step and of training",
    "epochs": "training epochs over the whole split; 0 = timing only (default: a budget)",
    "steps": "training steps over the whole split; 0 = timing only (default: a budget)",
    "dataset": "training data; fmnist_small ships with fxpsim",
    "data_dir": "folder holding fashion_mnist IDX files or cifar10 python batches",
    "w_bits": "weight bits (float = fp32 baseline)",
    "a_bits": "activation bits (float = fp32 baseline)",
    "g_bits": "gradient bits (float = fp32 baseline)",
    "rounding.w": "rounding of weights",
    "rounding.a": "rounding of activations",
    "rounding.g": "rounding of gradients",
    "seed": "the one seed: data order, init, stochastic-rounding RNG streams",
    "out": "report folder (default: reports/<run name>/)",
    "name": "run name (default: hw-model-phase-algo-batch-<config digest>)",
    "timing": "native: fxpsim's schedule; scalesim: SCALE-Sim's compute-cycle model",
    "fb.a": "forward-backtrack step fraction",
    "fb.coef_on": "forward-backtrack: where the blend coefficient is computed",
    "fb.trial_batch": "forward-backtrack: the trial step's batch",
    "fb.trial_updates_moments": "forward-backtrack: the trial step updates BN moments",
    "lr": "learning rate (default: the algorithm's)",
    "format": "reports to write (comma list); --format is the same option",
    "laq.rounds": "LAQ: projection rounds per step",
    "lbt.alpha": "LBT: interval update rate",
    "bnrect.lambda": "BN-rectification loss weight",
    "metagrad.hidden": "MetaGrad: hypernetwork hidden units",
    "metagrad.update": "MetaGrad: hyper (corrected) or plain weight update",
    "octo.lambda": "Octo: compensation loss weight",
    "eval_samples": "test images evaluated per epoch (0 = all)",
    "target_loss": "report the first step whose mean training loss reaches this",
    "mapping.objective": "what the per-layer mapping search minimizes",
    "schedule": "time plane: overlap (engines work at once) or sequential (one op at a time)",
    "input_shape": "C x H x W the model is built for, e.g. 3x32x32 (torch classes without "
                   "an input_shape attribute need it)",
    "model_timeout": "seconds a file.py:Class model may take per step (import, trace, forward)",
    "metagrad.lr": "MetaGrad: hypernetwork learning rate",
    "metagrad.gain": "MetaGrad: keep (the gradient's per-layer norm) or free (may scale the step)",
    "bnrect.form": "BN rectification penalty: hinge max(0, |g|/s - 1)^2 or square (g/s)^2",
    "bnrect.sigma": "BN rectification: batch or running standard deviation",
    "octo.backward": "Octo: requant (re-quantize clipped X and W, as its demo) or reuse codes",
    "lr_schedule": "learning-rate schedule: constant, step or cosine",
    "warmup": "linear learning-rate warm-up steps",
    "checkpoint": "file to save the trained network to; with phase=infer, to evaluate",
    "bn_recalibrate": "batches to re-estimate BatchNorm statistics over before each eval",
    "zigzag.probe_every": "steps between zig-zag probes on a fixed batch (0 = off)",
    "forward_scales": "forward clips of W and X: minmax, or learned (LBT; default for lbt)",
    "forward_scales.lr": "Adam learning rate of the learned forward clips",
    "a_codes": "activation codes after a ReLU: signed or unsigned (default unsigned for lbt)",
    "float_ends": "first and last conv/linear layer in float (default true for lbt)",
    "granularity.g": "gradient (dY) scales: one per tensor, channel or sample",
}


def _type_text(key: str, field: str) -> str:
    from fxpsim.config.run import FORMATS, RunConfig
    from fxpsim.config.validate import describe, spec_at
    from fxpsim.vocab import ROUNDING_NAMES

    if key.startswith("rounding."):
        return "a rounding mode (" + ", ".join(ROUNDING_NAMES) + ")"
    if key == "format":
        return "a comma list of " + ", ".join(FORMATS)
    if key == "input_shape":
        return "C x H x W (3x32x32, [3,32,32])"
    spec = spec_at(RunConfig, [field])
    return describe(spec) if spec is not None else "?"


def _default_text(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def key_rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) for every run key, in RUN_KEYS order."""
    from fxpsim.config.run import RUN_KEYS, RunConfig

    rows = []
    for key, (field, _) in RUN_KEYS.items():
        default = RunConfig.model_fields[field].default
        rows.append((key, _type_text(key, field), _default_text(default),
                     MEANING.get(key, "")))
    return rows


def keys_help(width: int = 100) -> str:
    """The ``run options`` block of ``--help``: one entry per key, type/default wrapped."""
    from fxpsim.config.run import HW_OVERRIDE_ROOTS

    lines = ["run options (key=value, --key value or --key=value, in any order):"]
    for key, typ, default, meaning in key_rows():
        lines.append(f"  {key:<24} {meaning}")
        lines += textwrap.wrap(f"{typ}; default {default}", width=width,
                               initial_indent=" " * 27, subsequent_indent=" " * 29)
    lines += ["", "hardware overrides (any hwconfig key, dotted; validated like the file; "
              "fxpsim schema hw lists them):",
              "  " + ", ".join(f"{r}.*" for r in HW_OVERRIDE_ROOTS),
              "  e.g. mac_array.rows=32 dram.bandwidth_gb_s=25.6 "
              "memory.global_sram.size_kib=512 'mac_array.requantizer.rounding_modes=[rne,"
              "stochastic]'"]
    return "\n".join(lines)


class HelpParser(_Parser):
    """The CLI's parser (one-line usage errors, exit code 2) whose help ends with the
    run-key list, built only when shown."""

    def __init__(self, *args: Any, key_help: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.key_help = key_help

    def format_help(self) -> str:
        text = super().format_help()
        if self.key_help:
            text = text.rstrip("\n") + "\n\n" + keys_help() + "\n"
        return text
