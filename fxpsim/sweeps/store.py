"""The results store of a sweep: one Parquet file per finished point, keyed by its digest.

``<folder>/points/<digest>.parquet`` is written (temporary file + rename, by the worker that
ran it) as soon as a point finishes, so a sweep killed at any moment keeps every point that
finished, and a rerun skips them. ``results.parquet`` and ``sweep.csv`` are the compacted table written at the end. Each
row holds every total, the per-pass numbers, energy and area by component, accuracy, the
point's run folder, and for a failed point its one-line error. A point's run folder is
``<folder>/runs/<digest[:16]>/``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fxpsim.errors import FxpsimError

MANIFEST = "sweep.json"
POINTS = "points"
RUNS = "runs"
#: metric columns present in every row (None for a failed point)
METRIC_COLUMNS: tuple[str, ...] = (
    "cycles", "seconds", "energy_pj", "energy_uj", "macs", "dram_bytes", "stall_cycles",
    "rng_bits", "requant_events", "area_mm2", "accuracy", "accuracy_train", "diverged_at_step",
)


def row_from_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The flat metric columns of one point from its ``summary.json`` data."""
    t = summary["totals"]
    row: dict[str, Any] = {k: t.get(k) for k in METRIC_COLUMNS if k in t}
    row["energy_uj"] = t["energy_pj"] / 1e6
    area = summary.get("area") or {}
    row["area_mm2"] = area.get("total_mm2")
    for k, v in (area.get("by_component_mm2") or {}).items():
        row[f"area.{k}"] = v
    for k, v in t.get("energy_by_component", {}).items():
        row[f"energy.{k}"] = v
    for p, m in summary.get("per_pass", {}).items():
        for k in ("cycles", "energy_pj", "macs", "dram_bytes"):
            row[f"pass.{p}.{k}"] = m.get(k)
    acc = summary.get("accuracy")
    row["accuracy"] = row["accuracy_train"] = row["diverged_at_step"] = None
    if isinstance(acc, Mapping):
        row["accuracy"] = acc.get("test")
        row["accuracy_train"] = acc.get("train")
        row["diverged_at_step"] = acc.get("diverged_at_step")
        if row["diverged_at_step"] is not None:
            row["accuracy"] = None  # a diverged run has no accuracy to optimise
    return row


class Store:
    """A sweep folder. Creating one on a folder that holds files fxpsim did not write is an
    error (nothing is ever deleted)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    # ---- layout ---------------------------------------------------------------------------
    def run_dir(self, digest: str) -> Path:
        return self.folder / RUNS / digest[:16]

    def open(self, manifest: Mapping[str, Any]) -> None:
        """Create the folder (or reuse an fxpsim sweep folder) and write the manifest."""
        if self.folder.exists():
            if not self.folder.is_dir():
                raise FxpsimError(f"{self.folder}: exists and is not a folder (out= names the "
                                  "sweep folder)")
            if any(self.folder.iterdir()) and not (self.folder / MANIFEST).exists():
                raise FxpsimError(f"{self.folder}: exists and is not an fxpsim sweep folder "
                                  f"(no {MANIFEST}); choose another out=")
        try:
            (self.folder / POINTS).mkdir(parents=True, exist_ok=True)
            (self.folder / RUNS).mkdir(exist_ok=True)
        except OSError as exc:
            raise FxpsimError(f"{self.folder}: cannot create the sweep folder: "
                              f"{exc.strerror or exc}") from None
        self.write_text(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def write_text(self, name: str, text: str) -> None:
        self._atomic(self.folder / name, lambda p: p.write_text(text, encoding="utf-8"))

    @staticmethod
    def _atomic(target: Path, write: Callable[[Path], object]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ---- rows -----------------------------------------------------------------------------
    def append(self, row: Mapping[str, Any]) -> None:
        """Persist one finished point (replacing an earlier row of the same digest)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([dict(row)])
        self._atomic(self.folder / POINTS / f"{row['digest']}.parquet",
                     lambda p: pq.write_table(table, p))

    def rows(self, digests: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Stored rows (all, or those of ``digests`` that exist), in ``digests`` order."""
        import pyarrow.parquet as pq

        folder = self.folder / POINTS
        if digests is None:
            files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        else:
            files = [folder / f"{d}.parquet" for d in digests]
        out = []
        for f in files:
            if f.exists():
                out.extend(pq.read_table(f).to_pylist())
        return out

    def done(self) -> set[str]:
        """Digests of points that finished successfully (failed points are run again)."""
        import pyarrow.parquet as pq

        folder = self.folder / POINTS
        ok = set()
        for f in folder.glob("*.parquet") if folder.exists() else ():
            if pq.read_table(f, columns=["status"]).column("status")[0].as_py() == "ok":
                ok.add(f.stem)
        return ok

    def write_table(self, frame: Any) -> None:
        """``results.parquet`` and ``sweep.csv`` from the final DataFrame."""
        self._atomic(self.folder / "results.parquet", lambda p: frame.to_parquet(p, index=False))
        self._atomic(self.folder / "sweep.csv", lambda p: frame.to_csv(p, index=False))
