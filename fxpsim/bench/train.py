"""``fxpsim bench train``: images/s of bit-exact INT8 W/A/G training vs fp32 PyTorch training
of the same network, measured in one process.

Network and data: ResNet-20 (``model=``, default ``resnet20``) for 28x28 grey images (the
embedded ``fmnist_small`` train split, batches in file order, the same for both runs). The
model keeps its native 32x32 input and the batch is zero-padded, as ``fxpsim run`` trains it.

* ``int8``: :func:`~fxpsim.training.qnet.build_qnet` with
  ``NumericsConfig.from_hw(hw)`` (default ``edge_npu``): 8-bit weights and activations
  rounded half-even, 8-bit gradients rounded stochastically from the hwconfig's RNG, every
  GEMM bit-exact in the hwconfig's accumulator; SQNR statistics off (the default).
* ``fp32``: plain torch modules (``nn.Conv2d``, ``nn.Linear``, the QNet's fp32 vector nodes)
  built from the same graph with the same initial weights.

Both train with SGD (lr 0.01, momentum 0.9) on fp32 master weights and cross-entropy. After
``warmup`` steps each, ``steps`` steps of each run interleaved (int8, fp32, int8, ...) so both
see the same machine load; images/s = batch / median step time; ratio = int8 / fp32 images/s
(target >= 1.0).

Narrow accumulator case (``narrow``): LeNet-5 on the same data, INT8 W/A/G on the same
hwconfig, once with its accumulator and once with ``mac_array.accumulator.bits=16``
(saturating; the training overflows it constantly), interleaved the same way; ratio = 16-bit
/ 32-bit images/s (target >= 0.5); the 16-bit run's accumulator overflow events are
reported. ``narrow=0`` skips it. Options: ``out=PATH`` (JSON, default reports/bench/train.json),
``batch=N`` (128), ``steps=N`` (8), ``warmup=N`` (2), ``model=NAME``, ``hw=NAME``, ``seed=N``,
``threads=N`` (torch and Numba threads; default: as configured), ``quick=1`` (batch 16,
2 steps, 1 warm-up: a smoke run).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from fxpsim.bench.arith import _int_option, machine_info
from fxpsim.errors import ConfigError

TARGET = 1.0
NARROW_TARGET = 0.5
NARROW_BITS = 16
_KNOWN = {"out", "batch", "steps", "warmup", "model", "hw", "seed", "threads", "quick",
          "narrow"}
_LR, _MOMENTUM = 0.01, 0.9


def _torch_net(qnet):
    """Plain-torch fp32 twin of a QNet (same graph, same initial parameters)."""
    import torch
    from torch import nn

    from fxpsim.training.qnet import VectorNode, _key

    class TorchNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph = qnet.graph
            self.layers = nn.ModuleDict()
            for node in self.graph.nodes[1:]:
                src = qnet.layers[_key(node.name)]
                if node.op == "conv2d":
                    a = node.attrs
                    k, cg, kh, kw = node.weight_shape
                    mod: nn.Module = nn.Conv2d(cg * a.groups, k, (kh, kw), a.stride, a.padding,
                                               groups=a.groups, bias=a.bias)
                elif node.op == "linear":
                    mod = nn.Linear(node.weight_shape[1], node.weight_shape[0],
                                    bias=src.bias is not None)
                else:
                    mod = VectorNode(node)
                if isinstance(mod, (nn.Conv2d, nn.Linear)):
                    with torch.no_grad():
                        mod.weight.copy_(src.weight)
                        if src.bias is not None and mod.bias is not None:
                            mod.bias.copy_(src.bias)
                self.layers[_key(node.name)] = mod

        def forward(self, x):
            nodes = self.graph.nodes
            vals = {nodes[0].name: qnet.adapt_input(x)}
            y = vals[nodes[0].name]
            for node in nodes[1:]:
                y = self.layers[_key(node.name)](*(vals[r] for r in node.inputs))
                vals[node.name] = y
            return y

    return TorchNet()


def _batches(ds, batch: int, n_batches: int) -> list:
    import torch

    n = len(ds.train_x)
    out = []
    for i in range(n_batches):
        idx = [(i * batch + j) % n for j in range(batch)]
        out.append((torch.from_numpy(ds.train_x[idx]), torch.from_numpy(ds.train_y[idx])))
    return out


def _qnet(model: str, hw_name: str, seed: int, overrides: dict[str, str] | None = None):
    from fxpsim.config.load import load_hwconfig
    from fxpsim.graph.resolve import load_model
    from fxpsim.training.data import load_dataset
    from fxpsim.training.formats import NumericsConfig
    from fxpsim.training.qnet import build_qnet

    ds = load_dataset("fmnist_small")
    graph = load_model(model, input_shape=ds.input_shape, num_classes=ds.num_classes)
    numerics = NumericsConfig.from_hw(load_hwconfig(hw_name, overrides).config, source=hw_name)
    return ds, graph, numerics, build_qnet(graph, numerics, seed=seed)


def _setup(model: str, hw_name: str, batch: int, n_batches: int, seed: int):
    ds, graph, numerics, qnet = _qnet(model, hw_name, seed)
    return graph, numerics, qnet, _torch_net(qnet), _batches(ds, batch, n_batches)


def _interleaved(runs: dict, batches: list, warmup: int) -> tuple[dict, dict, dict]:
    """(step times after warm-up, losses, integer/fp32 GEMM counts) of interleaved runs."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    losses: dict[str, list[float]] = {name: [] for name in runs}
    gemms = {"integer": 0, "fp32": 0}
    for i, (x, y) in enumerate(batches):
        for name, step in runs.items():
            t0 = time.perf_counter()
            loss, n_int, n_float = step(i, x, y)
            dt = time.perf_counter() - t0
            losses[name].append(loss)
            if i >= warmup:
                times[name].append(dt)
                gemms["integer"] += n_int
                gemms["fp32"] += n_float
    return times, losses, gemms


def measure_narrow(hw_name: str, batch: int, steps: int, warmup: int,
                   seed: int) -> dict[str, object]:
    """LeNet-5 INT8 training with the hwconfig's accumulator vs a 16-bit saturating one."""
    ds, graph, nc32, net32 = _qnet("lenet5", hw_name, seed)
    _, _, nc16, net16 = _qnet("lenet5", hw_name, seed, {
        "mac_array.accumulator.bits": str(NARROW_BITS),
        "mac_array.accumulator.overflow": "saturate"})
    wide, narrow = f"acc{nc32.acc_bits}", f"acc{NARROW_BITS}"
    runs = {wide: _stepper(net32, True), narrow: _stepper(net16, True)}
    times, losses, _ = _interleaved(runs, _batches(ds, batch, warmup + steps), warmup)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ips = {name: batch / med[name] for name in runs}
    events = sum(sum(s.acc_events.values()) for s in net16.layer_stats.values())
    return {
        "model": graph.name, "hw": hw_name, "batch": batch, "steps": steps, "warmup": warmup,
        "wide": wide, "narrow": narrow, "dataflow": nc16.dataflow,
        "narrow_overflow_events": events,
        "wide_images_per_s": ips[wide], "narrow_images_per_s": ips[narrow],
        "wide_median_step_s": med[wide], "narrow_median_step_s": med[narrow],
        "wide_loss": losses[wide], "narrow_loss": losses[narrow],
        "ratio": ips[narrow] / ips[wide], "target": NARROW_TARGET,
    }


def _stepper(net, qnet: bool):
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(net.parameters(), lr=_LR, momentum=_MOMENTUM)

    def step(i: int, x, y) -> tuple[float, int, int]:
        """(loss, integer GEMMs run, fp32 GEMMs run) of one training step."""
        if qnet:
            net.begin_step(i)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        n_int = n_float = 0
        if qnet:
            n_int = sum(r.integer for r in net.counters.gemms)
            n_float = len(net.counters.gemms) - n_int
            net.counters.reset()  # the log grows by every op of every step otherwise
        return float(loss.detach()), n_int, n_float

    return step


def measure(model: str, hw_name: str, batch: int, steps: int, warmup: int,
            seed: int) -> dict[str, object]:
    """Run the benchmark (see the module docstring); returns the JSON payload's results."""
    graph, numerics, qnet, fnet, batches = _setup(model, hw_name, batch, warmup + steps, seed)
    runs = {"int8": _stepper(qnet, True), "fp32": _stepper(fnet, False)}
    times, losses, gemms = _interleaved(runs, batches, warmup)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    ips = {name: batch / med[name] for name in runs}
    return {
        "model": graph.name, "input": list(graph.input_shape),
        "data_hw": list(graph.pad_to) if graph.pad_to else list(graph.input_shape[1:]),
        "hw": hw_name, "batch": batch, "steps": steps, "warmup": warmup, "seed": seed,
        "numerics": {"w_bits": numerics.weights.bits, "a_bits": numerics.activations.bits,
                     "g_bits": numerics.gradients.bits, "rounding_w": numerics.weights.rounding,
                     "rounding_a": numerics.activations.rounding,
                     "rounding_g": numerics.gradients.rounding, "rng": numerics.rng.kind,
                     "acc_bits": numerics.acc_bits, "dataflow": numerics.dataflow},
        "int8_gemms_timed": gemms,
        "int8_images_per_s": ips["int8"], "fp32_images_per_s": ips["fp32"],
        "int8_step_s": times["int8"], "fp32_step_s": times["fp32"],
        "int8_median_step_s": med["int8"], "fp32_median_step_s": med["fp32"],
        "ratio": ips["int8"] / ips["fp32"], "target": TARGET,
        "int8_loss": losses["int8"], "fp32_loss": losses["fp32"],
    }


def main(options: dict[str, str]) -> int:
    unknown = sorted(set(options) - _KNOWN)
    if unknown:
        raise ConfigError("command line", unknown[0],
                          f"unknown option for bench train (known: {', '.join(sorted(_KNOWN))})")
    quick = _int_option(options, "quick", 0, 0) > 0
    batch = _int_option(options, "batch", 16 if quick else 128, 1)
    steps = _int_option(options, "steps", 2 if quick else 8, 1)
    warmup = _int_option(options, "warmup", 1 if quick else 2, 0)
    seed = _int_option(options, "seed", 0, 0)
    threads = _int_option(options, "threads", 0, 1) if "threads" in options else None
    narrow = _int_option(options, "narrow", 1, 0) > 0
    model, hw_name = options.get("model", "resnet20"), options.get("hw", "edge_npu")
    out = Path(options.get("out", "reports/bench/train.json"))
    import numba
    import torch

    old_threads = (numba.get_num_threads(), torch.get_num_threads())
    try:
        if threads is not None:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            torch.set_num_threads(threads)
        res = measure(model, hw_name, batch, steps, warmup, seed)
        if narrow:
            res["narrow"] = measure_narrow(hw_name, batch, steps, warmup, seed)
        info = machine_info()
    finally:  # the thread counts are process-wide: give them back
        numba.set_num_threads(old_threads[0])
        torch.set_num_threads(old_threads[1])
    info["load_avg"] = _load_avg()
    _print_table(res, info)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "options": dict(sorted(options.items())), "results": res}
    out.write_text(json.dumps(payload, sort_keys=True, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _load_avg() -> list[float] | None:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _print_table(res: dict[str, object], info: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fxpsim bench train -- {res['model']} batch {res['batch']}, "
                        f"{info['cpu']}, torch threads {info['torch_threads']}, "
                        f"load {info['load_avg']}")
    for col in ("run", "median step s", "images/s", "ratio", "target"):
        table.add_column(col, justify="left" if col == "run" else "right")
    ratio = float(res["ratio"])  # type: ignore[arg-type]
    ok = "ok" if ratio >= TARGET else "MISSED"
    table.add_row("fp32 torch", f"{res['fp32_median_step_s']:.4f}",
                  f"{res['fp32_images_per_s']:.1f}", "", "")
    table.add_row("int8 W/A/G bit-exact", f"{res['int8_median_step_s']:.4f}",
                  f"{res['int8_images_per_s']:.1f}", f"{ratio:.3f}", f">= {TARGET:g} {ok}")
    nar = res.get("narrow")
    if isinstance(nar, dict):
        r = float(nar["ratio"])
        ok_n = "ok" if r >= NARROW_TARGET else "MISSED"
        table.add_row(f"lenet5 int8 {nar['wide']}", f"{nar['wide_median_step_s']:.4f}",
                      f"{nar['wide_images_per_s']:.1f}", "", "")
        table.add_row(f"lenet5 int8 {nar['narrow']} saturate "
                      f"({nar['narrow_overflow_events']} overflows)",
                      f"{nar['narrow_median_step_s']:.4f}", f"{nar['narrow_images_per_s']:.1f}",
                      f"{r:.3f}", f">= {NARROW_TARGET:g} {ok_n}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
