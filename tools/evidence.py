"""Regenerate the README's training evidence tables (several seeds, mean ± sd [min–max]).

Runs ``fxpsim run`` (the command a user types) for each configuration and seed of the
chosen groups, then prints Markdown tables. Seeds change the initialisation, the batch
order and the stochastic-rounding streams. Usage (repository root)::

    python tools/evidence.py --groups blaq fqt bn --seeds 0 1 2 > docs/evidence.md

Groups:

* ``blaq``: LAQ vs forward-and-backtrack (FB) with 1-bit weights (BLAQ's main setting,
  float activations/gradients), at equal steps and at equal GEMM work (LAQ with twice the
  steps); steps and MACs to LAQ's final loss, averaged over seeds.
* ``fqt``: W8A8G4 nearest on LeNet-5: SGD, MetaGrad (``metagrad.gain=keep``, the default,
  and ``free``), LBT; Octo W8A8G8.
* ``bn``: a small 5-conv+BN CNN with 3-bit stochastic gradients at lr 0.5 (where plain
  fully-quantized training loses its eval-mode accuracy): SGD, BN rectification (hinge and
  square, λ = 1), SGD with BN recalibration before evaluation.
* ``resnet``: ResNet-20 W8A8G8 (stochastic gradients) on ``fmnist_small``: SGD and
  MetaGrad, as far as 2-core time allows.

Each group has its own default step count (:data:`GROUP_STEPS`; ``--steps`` overrides).

Each run writes ``reports/evidence/<config>-n<steps>-s<seed>/summary.json`` (plus
``wall_s``, the measured wall time); rerunning skips runs whose summary exists, so the
script resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

CNN5 = "tools/models/cnn5_bn.yaml"
LENET = ["hw=edge_npu", "model=lenet5", "dataset=fmnist_small", "format=json"]
W1 = ["w_bits=1", "a_bits=float", "g_bits=float"]
G4 = ["g_bits=4", "rounding.g=half_even"]

#: group -> [(label, options, steps multiplier)]
GROUPS: dict[str, list[tuple[str, list[str], int]]] = {
    "blaq": [
        ("LAQ W1", ["algo=laq", *W1], 1),
        ("FB W1 a=0.6", ["algo=fb", *W1], 1),
        ("LAQ W1, 2x steps (FB's MACs)", ["algo=laq", *W1], 2),
    ],
    "fqt": [
        ("SGD W8A8G4 nearest", ["algo=sgd", *G4], 1),
        ("MetaGrad W8A8G4 nearest", ["algo=metagrad", *G4], 1),
        ("MetaGrad W8A8G4 nearest, metagrad.gain=free", ["algo=metagrad", *G4,
                                                         "metagrad.gain=free"], 1),
        ("LBT W8A8G4, minmax scales, signed codes, int ends",
         ["algo=lbt", "g_bits=4", "forward_scales=minmax", "a_codes=signed",
          "float_ends=false"], 1),
        ("LBT W8A8G4, authors' protocol", ["algo=lbt", "g_bits=4"], 1),
        ("Octo W8A8G8", ["algo=octo"], 1),
    ],
    "bn": [
        ("cnn5+BN SGD G3 stochastic lr 0.5", [f"model={CNN5}", "g_bits=3", "lr=0.5"], 1),
        ("cnn5+BN bnrect lambda=1", [f"model={CNN5}", "g_bits=3", "lr=0.5", "algo=bnrect",
                                     "bnrect.lambda=1"], 1),
        ("cnn5+BN bnrect square lambda=1", [f"model={CNN5}", "g_bits=3", "lr=0.5",
                                            "algo=bnrect", "bnrect.lambda=1",
                                            "bnrect.form=square"], 1),
        ("cnn5+BN SGD + bn_recalibrate=8", [f"model={CNN5}", "g_bits=3", "lr=0.5",
                                            "bn_recalibrate=8"], 1),
    ],
    "resnet": [
        ("ResNet-20 SGD W8A8G8", ["model=resnet20", "algo=sgd"], 1),
        ("ResNet-20 MetaGrad W8A8G8", ["model=resnet20", "algo=metagrad"], 1),
    ],
}

#: default steps per group (batch 32; fmnist_small has 6,000 training images)
GROUP_STEPS: dict[str, int] = {"blaq": 50, "fqt": 100, "bn": 40, "resnet": 20}


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def run_dir(label: str, steps: int, seed: int) -> Path:
    return Path("reports/evidence") / f"{slug(label)}-n{steps}-s{seed}"


def run_one(label: str, opts: list[str], seed: int, steps: int, batch: int,
            extra: list[str]) -> dict:
    out = run_dir(label, steps, seed)
    summary = out / "summary.json"
    if not summary.exists():
        base = [o for o in LENET if not (o.startswith("model=") and
                                         any(x.startswith("model=") for x in opts))]
        cmd = [sys.executable, "-m", "fxpsim", "run", *base, *opts, f"steps={steps}",
               f"batch={batch}", "eval_samples=500", "zigzag.probe_every=10",
               f"seed={seed}", f"out={out}", *extra]
        print("running:", " ".join(cmd[3:]), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        (out / "wall_s").write_text(f"{time.perf_counter() - t0:.1f}\n")
    s = json.loads(summary.read_text())
    wall = out / "wall_s"
    s["wall_s"] = float(wall.read_text()) if wall.exists() else None
    return s


def fmt(v: list[float | None], spec: str = ".4f") -> str:
    """mean ± sd [min–max] over seeds; a missing value (None) is named."""
    vals = [x for x in v if x is not None]
    if not vals:
        return "-"
    miss = f" ({len(v) - len(vals)} none)" if len(vals) < len(v) else ""
    if len(vals) == 1:
        return format(vals[0], spec) + miss
    sd = statistics.stdev(vals)
    return (f"{format(statistics.mean(vals), spec)} ± {format(sd, spec)} "
            f"[{format(min(vals), spec)}–{format(max(vals), spec)}]{miss}")


def final_loss(t: dict) -> float | None:
    """Mean batch loss over the last 10 steps (None if the run diverged)."""
    if t.get("diverged_at_step") is not None:
        return None
    pts = [p["loss"] for p in t.get("loss_curve", [])][-10:]
    return statistics.mean(pts) if pts else None


def method_note(ts: list[dict]) -> str:
    """Final per-method logs, averaged over seeds: MetaGrad's gain ‖Ĝ‖/‖G‖ (mean over layers)
    and smallest cos(Ĝ, G); BN rectification's largest |γ|/σ and penalty."""
    def final(prefix: str, how) -> float | None:
        vals = []
        for t in ts:
            xs = [v["final"] for k, v in t.get("method_logs", {}).items()
                  if k.startswith(prefix) and v["final"] is not None]
            if xs:
                vals.append(how(xs))
        return statistics.mean(vals) if vals else None
    parts = []
    for label, prefix, how, spec in (
            ("gain", "metagrad_gain.", statistics.mean, ".2f"),
            ("min cos", "metagrad_cos.", min, ".3f"),
            ("max abs(γ)/σ", "bnrect_max_gain", max, ".3g"),
            ("penalty", "bnrect_penalty", max, ".3g")):
        v = final(prefix, how)
        if v is not None:
            parts.append(f"{label} {format(v, spec)}")
    return ", ".join(parts) or "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", nargs="+", default=list(GROUPS), choices=list(GROUPS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None,
                    help="steps of every group (default: GROUP_STEPS per group)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--no-run", action="store_true",
                    help="only tabulate the runs that already have a summary")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run only the configurations with these exact labels")
    args = ap.parse_args()
    seeds = ", ".join(map(str, args.seeds))
    print(f"fmnist_small (6,000 training / 500 test images), batch {args.batch}, seeds {seeds} "
          "(initialisation, batch order and rounding streams); mean ± sd [min–max] over "
          "seeds. Zig-zag probed on a fixed batch every 10 steps (pairs of consecutive "
          "steps).\n")
    for group in args.groups:
        steps = args.steps or GROUP_STEPS[group]
        rows = []
        target: dict[int, float] = {}
        for label, opts, mult in GROUPS[group]:
            if args.only and label not in args.only:
                continue
            per_seed = []
            for seed in args.seeds:
                done = run_dir(label, steps * mult, seed) / "summary.json"
                if args.no_run and not done.exists():
                    continue
                extra = [f"target_loss={target[seed]}"] if seed in target else []
                s = run_one(label, opts, seed, steps * mult, args.batch, extra)
                t = s["training"]
                if group == "blaq" and label == "LAQ W1":
                    fl = final_loss(t)
                    if fl is not None:
                        target[seed] = round(fl, 4)
                per_seed.append(s)
            if per_seed:
                rows.append((label, mult, per_seed))
        print(f"\n#### {group}\n")
        print("| configuration | steps | test accuracy | final loss (last 10) | code flip rate |"
              " flip-back rate | zig-zag probe (raw / blend) | zig-zag batch | steps to "
              "target | MACs to target | method logs (final) | wall s/run |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for label, mult, ss in rows:
            ts = [s["training"] for s in ss]
            acc = [t["accuracy"]["test"] for t in ts]
            raw = fmt([t["zigzag"]["probe_neg_cos_fraction"] for t in ts], ".3f")
            blend = fmt([t["zigzag"]["probe_blend_neg_cos_fraction"] for t in ts], ".3f")
            stt = [t.get("steps_to_target") for t in ts]
            mtt = [t.get("macs_to_target") for t in ts]
            reached = sum(x is not None for x in stt)
            st = (f"{fmt([float(x) for x in stt if x is not None], '.0f')} "
                  f"({reached}/{len(stt)} reached)" if group == "blaq" else "-")
            mt = (fmt([x / 1e9 for x in mtt if x is not None], ".2f") + " G"
                  if group == "blaq" and reached else "-")
            print(f"| {label} | {steps * mult} | {fmt(acc, '.2%')} | "
                  f"{fmt([final_loss(t) for t in ts])} | "
                  f"{fmt([t['code_flip_rate'] for t in ts], '.2e')} | "
                  f"{fmt([t['code_flip_back_rate'] for t in ts], '.2e')} | {raw} / {blend} | "
                  f"{fmt([t['zigzag']['neg_cos_fraction'] for t in ts], '.3f')} | {st} | "
                  f"{mt} | {method_note(ts)} | {fmt([s['wall_s'] for s in ss], '.0f')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
