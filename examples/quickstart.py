"""fxpsim quickstart, notebook style: simulate a step, train a little, compare rounding, plot.

Run it as a script (``python examples/quickstart.py [output folder]``) or paste the cells
into a notebook. It takes about a minute on 2 cores (the first run also compiles kernels).
"""

# %% imports and where results go
import sys
from pathlib import Path

import fxpsim

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("reports/quickstart")
out.mkdir(parents=True, exist_ok=True)

# %% one inference step of LeNet-5 on the edge NPU: cycles and energy per layer
r = fxpsim.run(hw="edge_npu", model="lenet5", batch=1, phase="infer")
print(r.name, f"{r.totals['cycles']:,} cycles, {r.totals['energy_pj'] / 1e6:.2f} uJ")
per_layer = r.layers.groupby("layer", sort=False)[["cycles", "energy_pj"]].sum()
print(per_layer)

# %% the same step on a bigger array: typed overrides, hw keys with a double underscore
big = fxpsim.run(hw="edge_npu", model="lenet5", batch=1, phase="infer", mac_array__rows=32,
                 mac_array__cols=32)
print(f"32x32 array: {big.totals['cycles'] / r.totals['cycles']:.2f}x the cycles of 16x16")

# %% a few bit-exact INT8 training steps also give accuracy
t = fxpsim.run(hw="edge_npu", model="lenet5", batch=16, steps=4, eval_samples=100,
               progress=False)
print("test accuracy after 4 steps:", t.accuracy["test"])

# %% compare gradient rounding at 4 bits: one row per variant (a pandas DataFrame)
df = fxpsim.compare(hw="edge_npu", model="lenet5", steps=0, g_bits=4,
                    rounding_g=["half_even", "stochastic", "floor"])
print(df[["variant", "cycles", "energy_uj", "rng_bits", "rng_energy_uj", "requant_energy_uj"]])

# %% plot the rounding hardware's energy and write the reports of the first run
ax = df.plot.bar(x="variant", y=["rng_energy_uj", "requant_energy_uj"], rot=15)
ax.set_ylabel("uJ")
ax.figure.savefig(out / "rounding_energy.png", dpi=80)
folder = r.write(out / "lenet5-infer")
print("reports in", folder)
