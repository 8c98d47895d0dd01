"""Regenerate fxpsim/training/fmnist_subset.npz, the embedded ``fmnist_small`` dataset.

Usage (from the repository root)::

    python tools/make_fmnist_subset.py [--data-dir DIR] [--out PATH]

``DIR`` holds the four standard Fashion-MNIST IDX files, plain or ``.gz`` (default
``/usr/share/datasets/fashion-mnist``, where Debian's ``dataset-fashion-mnist`` installs them).

The subset is chosen without randomness: the first 600 training and the first 100 test
images of each of the 10 classes, in file order (Fashion-MNIST's files are already shuffled),
kept in ascending source order. The archive holds ``train_x``/``test_x`` (uint8, N x 28 x 28),
``train_y``/``test_y`` (uint8) and ``train_idx``/``test_idx`` (int32 indices into the IDX
files). It is written with fixed zip timestamps, so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from fxpsim.training.data import (
    EMBEDDED_TEST_PER_CLASS,
    EMBEDDED_TRAIN_PER_CLASS,
    FASHION_MNIST_DIR,
    first_per_class,
)
from fxpsim.training.data_formats import read_fashion_mnist

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "fxpsim" / "training" / "fmnist_subset.npz"


def build_subset(data_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of the embedded subset, read from the IDX files in ``data_dir``."""
    train_images, train_labels, test_images, test_labels = read_fashion_mnist(data_dir)
    train_idx = first_per_class(train_labels, EMBEDDED_TRAIN_PER_CLASS, 10)
    test_idx = first_per_class(test_labels, EMBEDDED_TEST_PER_CLASS, 10)
    return {
        "train_x": train_images[train_idx],
        "train_y": train_labels[train_idx],
        "test_x": test_images[test_idx],
        "test_y": test_labels[test_idx],
        "train_idx": train_idx.astype(np.int32),
        "test_idx": test_idx.astype(np.int32),
    }


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed .npz (loadable by ``np.load``) whose bytes depend only on ``arrays``.

    ``np.savez_compressed`` stamps the current time into each zip entry; a fixed timestamp
    keeps the committed file identical across regenerations.
    """
    with zipfile.ZipFile(path, "w") as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR, help="folder of the IDX files")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output .npz path")
    args = parser.parse_args(argv)
    arrays = build_subset(args.data_dir)
    write_npz(args.out, arrays)
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {arrays['train_x'].shape[0]} train + "
          f"{arrays['test_x'].shape[0]} test images, {size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
