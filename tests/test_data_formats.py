"""IDX and CIFAR-10 readers on tiny files written here byte by byte (struct / pickle)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fxpsim.errors import FxpsimError
from fxpsim.training.data import load_dataset
from fxpsim.training.data_formats import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    read_cifar10,
    read_fashion_mnist,
    read_idx,
)


def idx_bytes(magic: int, dims: tuple[int, ...], body: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + body


def write(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


IMG_BODY = bytes(range(2 * 3 * 4))  # 2 images of 3x4, pixel value = its flat position


@pytest.mark.parametrize("name", ["imgs", "imgs.gz"])
def test_idx_images_plain_and_gz(tmp_path: Path, name: str) -> None:
    """Header dims give the shape; the body is laid out image-major, row-major."""
    p = write(tmp_path / name, idx_bytes(0x803, (2, 3, 4), IMG_BODY))
    a = read_idx(p, magic=IDX_IMAGES_MAGIC)
    assert a.dtype == np.uint8 and a.shape == (2, 3, 4)
    assert a[1, 2, 3] == 23 and a[0, 1, 0] == 4 and a[1, 0, 0] == 12


def test_idx_labels(tmp_path: Path) -> None:
    p = write(tmp_path / "labs", idx_bytes(0x801, (3,), bytes([7, 0, 9])))
    assert read_idx(p, magic=IDX_LABELS_MAGIC).tolist() == [7, 0, 9]


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        (idx_bytes(0x801, (2, 3, 4), IMG_BODY), "magic number 0x00000801"),  # labels magic
        (idx_bytes(0xD03, (2, 3, 4), IMG_BODY), "magic number 0x00000d03"),  # float type
        (idx_bytes(0x0803, (2, 3, 4), IMG_BODY)[:-1], "truncated IDX file"),
        (idx_bytes(0x0803, (2, 3, 4), IMG_BODY) + b"\0", "trailing bytes"),
        (idx_bytes(0x0803, (2, 3, 4), b"")[:10], "truncated IDX header"),
        (b"\0\0", "no magic number"),
    ],
)
def test_idx_bad_files_name_the_file(tmp_path: Path, data: bytes, expect: str) -> None:
    p = write(tmp_path / "bad-images", data)
    with pytest.raises(FxpsimError, match=expect) as err:
        read_idx(p, magic=IDX_IMAGES_MAGIC)
    assert str(p) in str(err.value)


def test_idx_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(0x803, (2, 3, 4), IMG_BODY))
    p = tmp_path / "x.gz"
    p.write_bytes(good[: len(good) // 2])  # cut gzip stream
    with pytest.raises(FxpsimError, match="cannot read file") as err:
        read_idx(p, magic=IDX_IMAGES_MAGIC)
    assert str(p) in str(err.value)


def make_fashion_dir(d: Path, train_labels: bytes = bytes([3, 1]), gz: bool = True) -> Path:
    d.mkdir(exist_ok=True)
    ext = ".gz" if gz else ""
    write(d / f"train-images-idx3-ubyte{ext}", idx_bytes(0x803, (2, 3, 4), IMG_BODY))
    write(d / f"train-labels-idx1-ubyte{ext}", idx_bytes(0x801, (len(train_labels),),
                                                         train_labels))
    write(d / "t10k-images-idx3-ubyte", idx_bytes(0x803, (1, 3, 4), bytes([255] * 12)))
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(0x801, (1,), bytes([9])))
    return d


def test_fashion_folder_mixed_gz_and_plain(tmp_path: Path) -> None:
    tx, ty, vx, vy = read_fashion_mnist(make_fashion_dir(tmp_path / "f"))
    assert tx.shape == (2, 3, 4) and ty.tolist() == [3, 1]
    assert vx.shape == (1, 3, 4) and vy.tolist() == [9]


def test_load_fashion_mnist_from_tiny_folder(tmp_path: Path) -> None:
    """Pixels become float32 pixel/255 in (N, 1, H, W); labels int64."""
    ds = load_dataset("fashion_mnist", data_dir=str(make_fashion_dir(tmp_path / "f", gz=False)))
    assert ds.train_x.shape == (2, 1, 3, 4) and ds.train_x.dtype == np.float32
    assert ds.train_x[1, 0, 2, 3] == np.float32(23) / np.float32(255)
    assert ds.test_x[0, 0, 0, 0] == 1.0
    assert ds.train_y.dtype == np.int64 and ds.train_y.tolist() == [3, 1]
    assert ds.input_shape == (1, 3, 4) and "Zalando" in ds.license


def test_fashion_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FxpsimError, match="t10k-labels-idx1-ubyte") as err:
        read_fashion_mnist(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)
    d = make_fashion_dir(tmp_path / "f")
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FxpsimError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found"):
        read_fashion_mnist(d)
    d2 = make_fashion_dir(tmp_path / "g", train_labels=bytes([1, 2, 3]))
    with pytest.raises(FxpsimError, match="3 labels but train-images-idx3-ubyte.gz has 2"):
        read_fashion_mnist(d2)
    d3 = make_fashion_dir(tmp_path / "h", train_labels=bytes([1, 10]))
    with pytest.raises(FxpsimError, match="label 10 out of range"):
        read_fashion_mnist(d3)


# ---------------------------------------------------------------- CIFAR-10 python batches


def cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    obj = {b"batch_label": b"x", b"labels": labels, b"data": data,
           b"filenames": [b"f%d.png" % i for i in range(len(labels))]}
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar(d: Path, n_train_batches: int = 2) -> dict[str, np.ndarray]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    out = {}
    for i in range(1, n_train_batches + 1):
        data = rng.integers(0, 256, size=(5, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=5)]
        cifar_batch(d / f"data_batch_{i}", data, labels)
        out[f"data_{i}"], out[f"labels_{i}"] = data, np.array(labels)
    data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
    data[2, 1 * 1024 + 5 * 32 + 7] = 201  # green plane, row 5, column 7 of test image 2
    cifar_batch(d / "test_batch", data, [0, 9, 4, 4])
    out["test"] = data
    return out


def test_cifar_reader_pixel_order(tmp_path: Path) -> None:
    raw = make_cifar(tmp_path)
    tx, ty, vx, vy = read_cifar10(tmp_path)
    assert tx.shape == (10, 3, 32, 32) and vx.shape == (4, 3, 32, 32)
    assert vx[2, 1, 5, 7] == 201
    # channel c, row r, column k of image i is byte c*1024 + r*32 + k of its row
    assert tx[7, 2, 31, 0] == raw["data_2"][2, 2 * 1024 + 31 * 32 + 0]
    assert tx[0, 0, 0, 1] == raw["data_1"][0, 1]
    assert ty.tolist() == raw["labels_1"].tolist() + raw["labels_2"].tolist()
    assert vy.dtype == np.int64 and vy.tolist() == [0, 9, 4, 4]


def test_cifar_subfolder_and_load_dataset(tmp_path: Path) -> None:
    make_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", data_dir=str(tmp_path), limit_train=4)
    assert ds.input_shape == (3, 32, 32) and ds.train_x.shape == (4, 3, 32, 32)
    assert ds.test_x[2, 1, 5, 7] == np.float32(201) / np.float32(255)
    assert ds.num_classes == 10 and ds.class_names[0] == "airplane"


def test_cifar_errors(tmp_path: Path) -> None:
    with pytest.raises(FxpsimError, match="data_batch_1..data_batch_5 and test_batch") as err:
        read_cifar10(tmp_path / "missing")
    assert "missing" in str(err.value)
    with pytest.raises(FxpsimError, match="cifar10 needs data_dir"):
        load_dataset("cifar10")
    make_cifar(tmp_path / "gap", n_train_batches=2)
    (tmp_path / "gap" / "data_batch_4").write_bytes((tmp_path / "gap" / "data_batch_1")
                                                    .read_bytes())
    with pytest.raises(FxpsimError, match="data_batch_3 is missing but data_batch_4 exists"):
        read_cifar10(tmp_path / "gap")
    make_cifar(tmp_path / "bad")
    cifar_batch(tmp_path / "bad" / "test_batch", np.zeros((2, 3000), np.uint8), [0, 1])
    with pytest.raises(FxpsimError, match=r"shape \(N, 3072\)") as err:
        read_cifar10(tmp_path / "bad")
    assert "test_batch" in str(err.value)
    (tmp_path / "bad" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(FxpsimError, match="cannot read CIFAR-10 batch"):
        read_cifar10(tmp_path / "bad")
    cifar_batch(tmp_path / "bad" / "test_batch", np.zeros((2, 3072), np.uint8), [0, 10])
    with pytest.raises(FxpsimError, match=r"labels must lie in 0..9"):
        read_cifar10(tmp_path / "bad")
