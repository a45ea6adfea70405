"""Writers of small data and checkpoint files in the real on-disk formats.

Every data source of :mod:`sharpscope.data` is tested on files made here, byte for
byte in the format the real downloads use (IDX for MNIST, protocol-2 pickles with
bytes keys for CIFAR, PNG folders), plus hostile files whose ``__reduce__`` would
create a marker file if anything ever unpickled them unsafely.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic ``00 00 <type> <ndim>``, big-endian dims, data."""
    arr = np.asarray(array)
    if arr.dtype.kind in "iuf" and arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder(">"))
    code = IDX_CODES[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    return header + arr.tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path = Path(path)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def mnist_arrays(n_train: int = 24, n_test: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    }


MNIST_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def write_mnist(
    folder: Path, *, gz: bool = False, n_train: int = 24, n_test: int = 12
) -> dict[str, np.ndarray]:
    """The four MNIST IDX files (as distributed: ``train-images-idx3-ubyte[.gz]``...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = mnist_arrays(n_train, n_test)
    for key, name in MNIST_NAMES.items():
        write_idx(folder / name, arrays[key], gz=gz)
    return arrays


def numpy_pickle(obj: object) -> bytes:
    """Pickle ``obj`` as the CIFAR files are: protocol 2, numpy referenced as ``numpy.core``.

    The real files were written by Python 2 and NumPy 1.x, whose arrays pickle as
    ``numpy.core.multiarray._reconstruct``; NumPy 2 writes ``numpy._core``. Rewriting
    the module name gives the bytes the real files hold.
    """
    raw = pickle.dumps(obj, protocol=2)
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def cifar_batch(
    n: int, *, seed: int, label_key: bytes = b"labels", classes: int = 10
) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    batch: dict[bytes, object] = {
        b"batch_label": b"training batch",
        label_key: [int(v) for v in rng.integers(0, classes, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [int(v) // 5 for v in batch[label_key]]
    return batch


def write_cifar10(
    folder: Path, *, per_batch: int = 4, n_test: int = 6
) -> dict[str, dict[bytes, object]]:
    """``data_batch_1..5`` and ``test_batch`` (+ ``batches.meta``), protocol-2 pickles with bytes keys."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(per_batch, seed=i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n_test, seed=99)
    for name, batch in batches.items():
        (folder / name).write_bytes(numpy_pickle(batch))
    (folder / "batches.meta").write_bytes(
        numpy_pickle({b"label_names": [b"c%d" % i for i in range(10)]})
    )
    return batches


def write_cifar100(
    folder: Path, *, n_train: int = 10, n_test: int = 5
) -> dict[str, dict[bytes, object]]:
    """CIFAR-100's ``train`` and ``test`` (fine and coarse labels) and ``meta``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train": cifar_batch(n_train, seed=1, label_key=b"fine_labels", classes=100),
        "test": cifar_batch(n_test, seed=2, label_key=b"fine_labels", classes=100),
    }
    for name, batch in files.items():
        (folder / name).write_bytes(numpy_pickle(batch))
    (folder / "meta").write_bytes(
        numpy_pickle({b"fine_label_names": [b"f%d" % i for i in range(100)]})
    )
    return files


def tensor_arrays(
    n_train: int = 20,
    n_test: int = 8,
    shape: tuple[int, ...] = (2, 4, 4),
    classes: int = 3,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.normal(size=(n_train, *shape)).astype(np.float32),
        "y_train": (np.arange(n_train) % classes).astype(np.int64),
        "x_test": rng.normal(size=(n_test, *shape)).astype(np.float32),
        "y_test": (np.arange(n_test) % classes).astype(np.int64),
    }


def write_npz(path: Path, **overrides: np.ndarray) -> dict[str, np.ndarray]:
    arrays = {**tensor_arrays(), **overrides}
    np.savez(path, **arrays)
    return arrays


def write_pt(path: Path, **overrides: object) -> dict[str, object]:
    arrays = {k: torch.from_numpy(v) for k, v in tensor_arrays().items()}
    arrays.update(overrides)
    torch.save(arrays, path)
    return arrays


def write_image_folder(
    folder: Path,
    *,
    layout: str = "classes",
    classes: tuple[str, ...] = ("cat", "dog", "eel"),
    per_class: int = 4,
    size: int = 6,
    gray: bool = False,
) -> Path:
    """PNG images in ``folder/<class>/`` (``layout="classes"``) or ``folder/{train,test}/<class>/``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = Path(folder)
    roots = [folder] if layout == "classes" else [folder / "train", folder / "test"]
    for r, root in enumerate(roots):
        for c, cls in enumerate(classes):
            (root / cls).mkdir(parents=True, exist_ok=True)
            count = per_class if r == 0 else max(1, per_class // 2)
            for i in range(count):
                pixels = rng.integers(
                    0, 256, (size, size) if gray else (size, size, 3), dtype=np.uint8
                )
                pixels[0, 0] = 40 * c  # so the classes differ somewhere
                Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return folder


class MarkerPayload:
    """Unpickling this creates ``path`` (``__reduce__`` -> ``open(path, "w")``): a stand-in for malware."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_cifar_batch(path: Path, marker: Path) -> Path:
    """A CIFAR-looking batch whose data entry runs ``open(marker, "w")`` when unpickled naively."""
    batch = cifar_batch(2, seed=0)
    batch[b"data"] = MarkerPayload(marker)
    Path(path).write_bytes(pickle.dumps(batch, protocol=2))
    return Path(path)


def hostile_torch_file(path: Path, marker: Path, payload: dict | None = None) -> Path:
    """A ``torch.save`` file whose unpickling would create ``marker``."""
    obj = dict(payload or {})
    obj["hook"] = MarkerPayload(marker)
    torch.save(obj, path)
    return Path(path)
