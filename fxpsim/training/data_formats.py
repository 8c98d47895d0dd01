"""Readers for on-disk dataset formats: IDX (MNIST / Fashion-MNIST) and CIFAR-10 python batches.

Each reader returns raw ``uint8`` arrays exactly as stored in the file, with no scaling and no
reordering; :mod:`fxpsim.training.data` turns them into a :class:`~fxpsim.training.data.Dataset`.
Every problem with a file (missing, truncated, wrong magic number, wrong shape) raises
:class:`~fxpsim.errors.FxpsimError` naming the file.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path

import numpy as np

from fxpsim.errors import FxpsimError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dims (count, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dim (count)
_IDX_UBYTE = 0x08

FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CIFAR_SUBFOLDER = "cifar-10-batches-py"
CIFAR_TEST_FILE = "test_batch"
CIFAR_MAX_TRAIN_BATCHES = 5


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; a ``.gz`` name is decompressed (a corrupt archive is a user error)."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise FxpsimError(f"{path}: cannot read file: {exc}") from exc


def read_idx(path: str | Path, *, magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes and return its array (``uint8``, C order).

    The format: a big-endian 32-bit magic number ``0x000008nn`` (``08`` = unsigned byte,
    ``nn`` = number of dimensions), ``nn`` big-endian 32-bit sizes, then exactly
    ``prod(sizes)`` bytes of data. ``magic`` is the number the caller expects
    (:data:`IDX_IMAGES_MAGIC` or :data:`IDX_LABELS_MAGIC`); any other magic number, a
    header or body shorter than the sizes promise, or trailing bytes raise
    :class:`FxpsimError` naming ``path``. A name ending in ``.gz`` is read through gzip.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise FxpsimError(f"{path}: truncated IDX file ({len(data)} bytes, no magic number)")
    found = int.from_bytes(data[:4], "big")
    if found != magic or (magic >> 8) != _IDX_UBYTE:
        raise FxpsimError(
            f"{path}: not the expected IDX file: magic number 0x{found:08x}, "
            f"expected 0x{magic:08x}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FxpsimError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = 1
    for d in dims:
        body *= d
    if len(data) != header + body:
        what = "truncated" if len(data) < header + body else "trailing bytes in"
        raise FxpsimError(
            f"{path}: {what} IDX file: dims {dims} need {header + body} bytes, "
            f"file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=body, offset=header).reshape(dims).copy()


def _find_idx(data_dir: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``data_dir`` (the plain file wins when both exist)."""
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    expected = ", ".join(f"{s}[.gz]" for s in FASHION_FILES.values())
    raise FxpsimError(
        f"{data_dir}: Fashion-MNIST file {stem}[.gz] not found (expected the IDX files "
        f"{expected})"
    )


def read_fashion_mnist(
    data_dir: str | Path, *, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the four standard (Fashion-)MNIST IDX files from ``data_dir``.

    Returns ``(train_images, train_labels, test_images, test_labels)``: images ``uint8``
    of shape ``(N, rows, cols)``, labels ``uint8`` of shape ``(N,)``, in file order.
    Each file may be plain or gzipped (``name`` or ``name.gz``). Image and label counts
    must agree and every label must be below ``num_classes``.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        expected = ", ".join(f"{s}[.gz]" for s in FASHION_FILES.values())
        raise FxpsimError(f"{data_dir}: Fashion-MNIST folder not found (expected {expected})")
    out = []
    for split in ("train", "test"):
        img_path = _find_idx(data_dir, FASHION_FILES[f"{split}_images"])
        lab_path = _find_idx(data_dir, FASHION_FILES[f"{split}_labels"])
        images = read_idx(img_path, magic=IDX_IMAGES_MAGIC)
        labels = read_idx(lab_path, magic=IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise FxpsimError(
                f"{lab_path}: {labels.shape[0]} labels but {img_path.name} has "
                f"{images.shape[0]} images"
            )
        if labels.size and int(labels.max()) >= num_classes:
            raise FxpsimError(
                f"{lab_path}: label {int(labels.max())} out of range 0..{num_classes - 1}"
            )
        out += [images, labels]
    return out[0], out[1], out[2], out[3]


def _read_cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch: images ``uint8 (N, 3, 32, 32)``, labels ``int64 (N,)``."""
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # unpickling can fail in many ways; all mean a bad file
        raise FxpsimError(f"{path}: cannot read CIFAR-10 batch: {exc}") from exc
    if not isinstance(obj, dict) or b"data" not in obj or b"labels" not in obj:
        raise FxpsimError(f"{path}: not a CIFAR-10 batch (expected a dict with b'data', b'labels')")
    data = obj[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or (
        data.shape[1] != 3 * 32 * 32
    ):
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise FxpsimError(
            f"{path}: b'data' must be a uint8 array of shape (N, 3072), got {dtype} {shape}"
        )
    try:
        labels = np.asarray(obj[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise FxpsimError(f"{path}: b'labels' is not a list of integers") from exc
    if labels.shape != (data.shape[0],):
        raise FxpsimError(
            f"{path}: b'labels' has shape {labels.shape}, expected ({data.shape[0]},)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise FxpsimError(f"{path}: labels must lie in 0..{num_classes - 1}")
    # Each row is 1024 red, then 1024 green, then 1024 blue values, each plane row-major.
    return data.reshape(-1, 3, 32, 32).copy(), labels


def cifar_folder(data_dir: str | Path) -> Path:
    """The folder holding the batches: ``data_dir`` itself or its ``cifar-10-batches-py``."""
    data_dir = Path(data_dir)
    for candidate in (data_dir, data_dir / CIFAR_SUBFOLDER):
        if (candidate / CIFAR_TEST_FILE).is_file() and (candidate / "data_batch_1").is_file():
            return candidate
    raise FxpsimError(
        f"{data_dir}: CIFAR-10 python batches not found (expected data_batch_1..data_batch_5 "
        f"and test_batch there or in {CIFAR_SUBFOLDER}/)"
    )


def read_cifar10(
    data_dir: str | Path, *, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read a local copy of the CIFAR-10 "python version" batches.

    Returns ``(train_images, train_labels, test_images, test_labels)``, images ``uint8``
    ``(N, 3, 32, 32)`` (channels R, G, B), labels ``int64``, in file order. The training
    set is ``data_batch_1``, ``data_batch_2``, ... concatenated in that order: the standard
    copy has five; fewer are accepted as long as the numbering has no gap.

    Security: the batches are Python pickles, and unpickling can run code stored in the
    file. That is the format's design, so only read your own trusted copy.
    """
    folder = cifar_folder(data_dir)
    n_batches = 1
    while n_batches < CIFAR_MAX_TRAIN_BATCHES and (
        folder / f"data_batch_{n_batches + 1}"
    ).is_file():
        n_batches += 1
    for later in range(n_batches + 2, CIFAR_MAX_TRAIN_BATCHES + 1):
        if (folder / f"data_batch_{later}").is_file():
            raise FxpsimError(
                f"{folder}: data_batch_{n_batches + 1} is missing but data_batch_{later} exists"
            )
    parts = [
        _read_cifar_batch(folder / f"data_batch_{i}", num_classes)
        for i in range(1, n_batches + 1)
    ]
    test_x, test_y = _read_cifar_batch(folder / CIFAR_TEST_FILE, num_classes)
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    return train_x, train_y, test_x, test_y
