"""Real image-classification datasets for the training plane, offline and deterministic.

Three datasets, by name:

* ``fmnist_small`` (default): a class-balanced real subset of Fashion-MNIST embedded in the
  package (``fmnist_subset.npz``: the first 600 training and first 100 test images of each
  class, in file order; 6000 + 1000 images, 28x28 grey). Needs no download.
  ``tools/make_fmnist_subset.py`` regenerates it byte-for-byte from the IDX files.
* ``fashion_mnist``: the full 60000 + 10000 images from the standard IDX files (plain or
  ``.gz``) in ``data_dir`` (default :data:`FASHION_MNIST_DIR`, where Debian's
  ``dataset-fashion-mnist`` package installs them).
* ``cifar10``: a user's local copy of the CIFAR-10 python batches in ``data_dir``.

All images come out as ``float32`` arrays ``(N, C, H, W)`` with values ``pixel / 255`` in
[0, 1]; labels as ``int64``. Randomness (subsetting, batch order) comes only from the
``seed`` arguments through :func:`numpy.random.default_rng`; nothing touches global RNGs.
Arrays inside a :class:`Dataset` belong to it: copy before changing them in place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from fxpsim.errors import FxpsimError
from fxpsim.training.data_formats import read_cifar10, read_fashion_mnist

DATASET_NAMES = ("fmnist_small", "fashion_mnist", "cifar10")
DEFAULT_DATASET = "fmnist_small"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
EMBEDDED_FILE = "fmnist_subset.npz"
EMBEDDED_TRAIN_PER_CLASS = 600
EMBEDDED_TEST_PER_CLASS = 100

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
FASHION_LICENSE = (
    "MIT License, Copyright (c) 2017 Zalando SE "
    "(full text: fxpsim/training/FASHION_MNIST_LICENSE)"
)
CIFAR10_LICENSE = (
    "CIFAR-10 (A. Krizhevsky, 2009, https://www.cs.toronto.edu/~kriz/cifar.html); "
    "no license text is distributed with it: terms are those of the user's copy"
)

# Separate RNG streams so that limiting one split never changes the other's subset.
_TRAIN_STREAM, _TEST_STREAM, _BATCH_STREAM = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Dataset:
    """A loaded dataset. ``*_x``: float32 ``(N, C, H, W)`` in [0, 1]; ``*_y``: int64 ``(N,)``.

    ``input_shape`` is ``(C, H, W)``; ``source`` says where the images were read from;
    ``license`` names the data's license. Equality is identity (the fields are arrays).
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    input_shape: tuple[int, int, int]
    source: str
    license: str
    class_names: tuple[str, ...] = field(default=())


def _check_index(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise FxpsimError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def first_per_class(labels: np.ndarray, per_class: int, num_classes: int) -> np.ndarray:
    """Indices (ascending, int64) of the first ``per_class`` samples of each class in order.

    This is the rule that builds the embedded subset; a class with fewer samples is an error.
    """
    labels = np.asarray(labels)
    picked = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if idx.size < per_class:
            raise FxpsimError(f"class {c} has {idx.size} samples, fewer than {per_class}")
        picked.append(idx[:per_class])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def balanced_subset(
    labels: np.ndarray, limit: int, rng: np.random.Generator, num_classes: int
) -> np.ndarray:
    """Indices (ascending, int64) of a class-balanced random subset of ``limit`` samples.

    Within each class (0, 1, ... in turn) ``rng.permutation`` ranks the samples; the subset is
    the ``limit`` samples of lowest (rank, class). So every class gets ``limit // K`` or one
    more (the extra ones go to the lowest class numbers), except that a class with too few
    samples gives all it has and the rest is spread over the others. ``limit >= len(labels)``
    returns every index without drawing from ``rng``.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if limit >= n:
        return np.arange(n, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rank[idx[rng.permutation(idx.size)]] = np.arange(idx.size)
    order = np.lexsort((labels, rank))  # primary key: rank, then class
    return np.sort(order[:limit]).astype(np.int64)


def _to_float(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, H, W)`` or ``(N, C, H, W)`` -> float32 ``(N, C, H, W)``, ``pixel / 255``."""
    if images.ndim == 3:
        images = images[:, None, :, :]
    return np.divide(images, np.float32(255.0), dtype=np.float32)


def _load_embedded() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ref = resources.files("fxpsim.training").joinpath(EMBEDDED_FILE)
    try:
        with ref.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("train_x", "train_y", "test_x", "test_y")}
    except (OSError, KeyError, ValueError) as exc:
        raise FxpsimError(
            f"fxpsim package data {EMBEDDED_FILE} is missing or damaged ({exc}); "
            "reinstall fxpsim or use dataset=fashion_mnist with its IDX files"
        ) from exc
    return arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"]


def load_dataset(
    name: str = DEFAULT_DATASET,
    *,
    data_dir: str | None = None,
    seed: int = 0,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASET_NAMES`) as a :class:`Dataset`.

    ``data_dir``: folder of the files for ``fashion_mnist`` (default
    :data:`FASHION_MNIST_DIR`) and ``cifar10`` (required; the folder holding
    ``data_batch_1..5`` and ``test_batch`` or its ``cifar-10-batches-py`` subfolder). It is
    an error for ``fmnist_small``, which is embedded. ``limit_train`` / ``limit_test`` keep a
    class-balanced random subset of at most that many samples (see :func:`balanced_subset`),
    drawn from ``np.random.default_rng((seed, 0))`` for train and ``(seed, 1)`` for test, and
    kept in source order; ``None`` keeps every sample and then ``seed`` has no effect.
    """
    if name not in DATASET_NAMES:
        raise FxpsimError(
            f"dataset: unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}"
        )
    seed = _check_index(seed, "seed", 0)
    if limit_train is not None:
        limit_train = _check_index(limit_train, "limit_train", 1)
    if limit_test is not None:
        limit_test = _check_index(limit_test, "limit_test", 1)

    if name == "fmnist_small":
        if data_dir is not None:
            raise FxpsimError(
                "data_dir: fmnist_small is embedded in fxpsim and reads no folder; "
                "use dataset=fashion_mnist to read IDX files from a folder"
            )
        tx, ty, vx, vy = _load_embedded()
        source = (
            f"embedded Fashion-MNIST subset {EMBEDDED_FILE} (first "
            f"{EMBEDDED_TRAIN_PER_CLASS} train / {EMBEDDED_TEST_PER_CLASS} test images per class)"
        )
        num_classes, classes, license_ = 10, FASHION_CLASSES, FASHION_LICENSE
    elif name == "fashion_mnist":
        folder = Path(data_dir if data_dir is not None else FASHION_MNIST_DIR)
        tx, ty, vx, vy = read_fashion_mnist(folder)
        source = f"Fashion-MNIST IDX files in {folder}"
        num_classes, classes, license_ = 10, FASHION_CLASSES, FASHION_LICENSE
    else:
        if data_dir is None:
            raise FxpsimError(
                "data_dir: cifar10 needs data_dir, the folder of your local CIFAR-10 python "
                "batches (data_batch_1..data_batch_5, test_batch)"
            )
        tx, ty, vx, vy = read_cifar10(data_dir)
        source = f"CIFAR-10 python batches in {Path(data_dir)}"
        num_classes, classes, license_ = 10, CIFAR10_CLASSES, CIFAR10_LICENSE

    if limit_train is not None:
        keep = balanced_subset(ty, limit_train, np.random.default_rng((seed, _TRAIN_STREAM)),
                               num_classes)
        tx, ty = tx[keep], ty[keep]
    if limit_test is not None:
        keep = balanced_subset(vy, limit_test, np.random.default_rng((seed, _TEST_STREAM)),
                               num_classes)
        vx, vy = vx[keep], vy[keep]
    train_x, test_x = _to_float(tx), _to_float(vx)
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=ty.astype(np.int64),
        test_x=test_x,
        test_y=vy.astype(np.int64),
        num_classes=num_classes,
        input_shape=(int(train_x.shape[1]), int(train_x.shape[2]), int(train_x.shape[3])),
        source=source,
        license=license_,
        class_names=classes,
    )


def batches(
    x: np.ndarray,
    y: np.ndarray,
    batch: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x[idx], y[idx])`` mini-batches of ``batch`` samples (copies).

    With ``shuffle`` the order is ``np.random.default_rng((seed, 2, epoch)).permutation(N)``:
    the same (seed, epoch) always gives the same batches, and each epoch a different order.
    Without it the order is 0..N-1. The last partial batch is yielded unless ``drop_last``
    (training usually drops it so every step has the same batch size; evaluation keeps it so
    every sample is counted).
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch: must be a positive integer, got {batch!r}")
    for arg, value in (("seed", seed), ("epoch", epoch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{arg}: must be a non-negative integer, got {value!r}")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"y: has {y.shape[0]} samples but x has {n}")
    if shuffle:
        order = np.random.default_rng((int(seed), _BATCH_STREAM, int(epoch))).permutation(n)
    else:
        order = np.arange(n)
    end = n - n % batch if drop_last else n
    for start in range(0, end, batch):
        idx = order[start : start + batch]
        yield x[idx], y[idx]


def pad_to(x: np.ndarray, hw: int | tuple[int, int]) -> np.ndarray:
    """Zero-pad ``(N, C, H, W)`` images centrally to ``hw`` (``int`` = square).

    An odd difference puts the extra row/column at the bottom/right (28 -> 32 pads 2 on each
    side; 28 -> 31 pads 1 above, 2 below). Returns a new array of ``x``'s dtype (``x`` itself
    when the size already matches). Shrinking is an error.
    """
    if x.ndim != 4:
        raise ValueError(f"x: expected (N, C, H, W) images, got shape {x.shape}")
    th, tw = (hw, hw) if isinstance(hw, (int, np.integer)) else hw
    h, w = x.shape[2], x.shape[3]
    if th < h or tw < w:
        raise ValueError(f"hw: target {th}x{tw} is smaller than the images ({h}x{w})")
    if (th, tw) == (h, w):
        return x
    top, left = (th - h) // 2, (tw - w) // 2
    out = np.zeros((x.shape[0], x.shape[1], th, tw), dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def to_channels(x: np.ndarray, c: int) -> np.ndarray:
    """Give ``(N, C, H, W)`` images ``c`` channels: unchanged if ``C == c``, a grey image
    (``C == 1``) replicated ``c`` times; anything else is an error."""
    if x.ndim != 4:
        raise ValueError(f"x: expected (N, C, H, W) images, got shape {x.shape}")
    if x.shape[1] == c:
        return x
    if x.shape[1] != 1:
        raise ValueError(f"c: cannot turn {x.shape[1]}-channel images into {c} channels")
    return np.repeat(x, c, axis=1)


def adapt(ds: Dataset, input_shape: tuple[int, int, int]) -> Dataset:
    """``ds`` with both splits converted to a model's ``(C, H, W)`` by :func:`to_channels`
    and :func:`pad_to` (e.g. Fashion-MNIST 1x28x28 -> 3x32x32 for a CIFAR-shaped model)."""
    c, h, w = input_shape
    train_x = pad_to(to_channels(ds.train_x, c), (h, w))
    test_x = pad_to(to_channels(ds.test_x, c), (h, w))
    return replace(ds, train_x=train_x, test_x=test_x, input_shape=(c, h, w))
