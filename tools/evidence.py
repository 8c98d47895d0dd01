"""Regenerate the README's accuracy evidence table on full Fashion-MNIST.

Runs ``fxpsim run`` (the same command a user types) for each configuration and seed, then
prints a Markdown table. Usage (from the repository root, Fashion-MNIST IDX files installed
by Debian's ``dataset-fashion-mnist`` or under ``data_dir=``)::

    python tools/evidence.py --epochs 2 --seeds 0 1 > docs/evidence.md

Each run writes ``reports/evidence/<config>-s<seed>/summary.json``; rerunning skips runs whose
summary exists, so the script can be resumed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BASE = ["hw=edge_npu", "model=lenet5", "dataset=fashion_mnist", "batch=64", "eval_samples=1000",
        "format=json"]

#: (label, options) in table order; LAQ runs before FB so FB can be timed to LAQ's final loss
CONFIGS: list[tuple[str, list[str]]] = [
    ("fp32 (float W/A/G), sgd", ["w_bits=float", "a_bits=float", "g_bits=float"]),
    ("W8A8G8 nearest, sgd", ["rounding.g=half_even"]),
    ("W8A8G8 stochastic, sgd", ["rounding.g=stochastic"]),
    ("W8A8G4 min-max, nearest", ["g_bits=4", "rounding.g=half_even"]),
    ("W8A8G4 min-max, stochastic", ["g_bits=4", "rounding.g=stochastic"]),
    ("W8A8G4 LBT, nearest", ["g_bits=4", "algo=lbt", "rounding.g=half_even"]),
    ("W8A8G4 LBT, stochastic", ["g_bits=4", "algo=lbt", "rounding.g=stochastic"]),
    ("LAQ W2 (float A/G)", ["algo=laq", "w_bits=2", "a_bits=float", "g_bits=float"]),
    ("FB W2 (float A/G), a=0.6", ["algo=fb", "w_bits=2", "a_bits=float", "g_bits=float"]),
]


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def run_one(label: str, opts: list[str], seed: int, epochs: int, extra: list[str]) -> dict:
    out = Path("reports/evidence") / f"{slug(label)}-s{seed}"
    summary = out / "summary.json"
    if not summary.exists():
        cmd = [sys.executable, "-m", "fxpsim", "run", *BASE, *opts, f"epochs={epochs}",
               f"seed={seed}", f"out={out}", *extra]
        print("running:", " ".join(cmd[2:]), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(summary.read_text())


def fmt(v: list[float | None], pct: bool = False) -> str:
    """One value, or mean [min-max] over seeds; a diverged seed (None) is named."""
    spec = ".2%" if pct else ".4f"
    if any(x is None for x in v):
        return ", ".join("diverged" if x is None else format(x, spec) for x in v)
    if len(v) == 1:
        return format(v[0], spec)
    return (f"{format(statistics.mean(v), spec)} [{format(min(v), spec)}-"
            f"{format(max(v), spec)}]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = ap.parse_args()
    rows = []
    laq_loss: dict[int, float] = {}
    for label, opts in CONFIGS:
        per_seed = []
        for seed in args.seeds:
            extra = []
            if label.startswith("FB") and seed in laq_loss:
                extra = [f"target_loss={laq_loss[seed]}"]
            s = run_one(label, opts, seed, args.epochs, extra)
            t = s["training"]
            if label.startswith("LAQ"):
                laq_loss[seed] = t["history"][-1]["loss"]
                # LAQ's own steps to its final loss, for the same comparison
                s = run_one(label + " (target)", opts, seed, args.epochs,
                            [f"target_loss={laq_loss[seed]}"])
                t = s["training"]
            per_seed.append(t)
        rows.append((label, per_seed))
    seeds = ", ".join(map(str, args.seeds))
    print(f"Fashion-MNIST, all 60,000 training images; test accuracy on a class-balanced"
          f" 1,000-image subset of the 10,000 test images (fixed per seed). LeNet-5 with"
          f" edge_npu numerics (32-bit saturating accumulators, LFSR stochastic rounding),"
          f" batch 64, {args.epochs} epochs, seeds {seeds}; mean over seeds (min-max in"
          f" brackets).\n")
    print("| configuration | test accuracy | final train loss | steps to LAQ's final loss |"
          " gradient zig-zag (cos<0 fraction) |")
    print("|---|---|---|---|---|")
    for label, ts in rows:
        acc = [t["accuracy"]["test"] for t in ts]
        loss = [t["history"][-1]["loss"] if t["history"] and t.get("diverged_at_step") is None
                else None for t in ts]
        stt = [t.get("steps_to_target") for t in ts]
        zz = [t["zigzag"]["neg_cos_fraction"] for t in ts]

        target = ("-" if all(x is None for x in stt) or "W2" not in label
                  else ", ".join("not reached" if x is None else str(x) for x in stt))
        print(f"| {label} | {fmt(acc, True)} | {fmt(loss)} | {target} | {fmt(zz)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
