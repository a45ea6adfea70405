"""Data sources by spec string, always local (sharpscope never touches the network).

=====================  ==========================================================
spec                   what it loads
=====================  ==========================================================
``digits``             scikit-learn's bundled 8x8 digits (the default), fixed 80/20 split
``synthetic[:k=v,..]`` procedural Gaussian class clusters (keys: ``train``, ``test``,
                       ``classes``, ``shape`` like ``1x8x8``, ``seed``, ``noise``)
``mnist:DIR``          the four MNIST idx files, gzipped or not
``cifar10:DIR``        the CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``)
``cifar100:DIR``       the CIFAR-100 python files (``train``, ``test``; fine labels)
``tensors:FILE``       ``.npz`` or ``.pt`` holding ``x_train, y_train, x_test, y_test``
``folder:DIR``         one sub-folder per class of images; ``DIR/train`` and
                       ``DIR/test`` if present, else a seeded 80/20 split
=====================  ==========================================================

CIFAR batches are pickles: they are read with a restricted unpickler that only
builds numpy arrays, lists, dicts, strings and numbers, so a hostile file cannot
run code. ``.pt`` tensor files are read with ``torch.load(weights_only=True)``.

Example:
    >>> data = load_data("digits")
    >>> data.input_shape, data.num_classes, len(data.y_train), len(data.y_test)
    ((1, 8, 8), 10, 1438, 359)
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import io
import os
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError

__all__ = [
    "DataSplits",
    "DataSpec",
    "DATA_SOURCES",
    "load_data",
    "check_finite_inputs",
    "iterate_batches",
    "subsample",
    "restricted_unpickle",
]

Batch = tuple[torch.Tensor, torch.Tensor]


def subsample(
    x: torch.Tensor, y: torch.Tensor, n: int | None, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of ``n`` samples (all of them when ``n`` is None or too large).

    The same ``(n, seed)`` always picks the same samples, so several checkpoints are
    probed on identical data.
    """
    if n is None or n >= len(y):
        return x, y
    if n < 1:
        raise DataError(f"--samples must be at least 1, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(y), generator=g)[: int(n)].sort().values
    return x[idx], y[idx]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    device: torch.device | str | None = None,
) -> Iterator[Batch]:
    """Yield ``(x, y)`` mini-batches; the last one may be smaller unless ``drop_last``."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - (n % batch_size) if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            xb, yb = x[idx], y[idx]
        if device is not None:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        yield xb, yb


@dataclass(frozen=True)
class DataSpec:
    """What a checkpoint records about its data: the spec string and the loading options."""

    spec: str = "digits"
    samples: int | None = None
    seed: int = 0
    normalize: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "samples": self.samples,
            "seed": self.seed,
            "normalize": self.normalize,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | str) -> DataSpec:
        if isinstance(d, str):
            return cls(spec=d)
        return cls(
            spec=str(d.get("spec", "digits")),
            samples=d.get("samples"),
            seed=int(d.get("seed", 0)),
            normalize=bool(d.get("normalize", True)),
        )

    def load(self) -> DataSplits:
        return load_data(self.spec, samples=self.samples, seed=self.seed, normalize=self.normalize)


@dataclass
class DataSplits:
    """Train and test tensors of one data source.

    ``x_*`` are float32 tensors of shape ``(N, *input_shape)``, ``y_*`` int64 class labels.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    spec: DataSpec = field(default_factory=DataSpec)
    mean: list[float] | None = None
    std: list[float] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``("train" | "test")`` -> ``(x, y)``."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "test":
            return self.x_test, self.y_test
        raise DataError(f"unknown split {name!r}: use train or test")

    def subset(
        self, split: str = "train", samples: int | None = None, *, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A seeded subset of a split (see :func:`subsample`)."""
        x, y = self.split(split)
        return subsample(x, y, samples, seed=seed)

    def batches(
        self,
        split: str = "train",
        batch_size: int = 256,
        *,
        samples: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> list[Batch]:
        """The (optionally subsampled) split cut into batches, as a list that can be iterated many times."""
        x, y = self.subset(split, samples, seed=seed)
        return list(iterate_batches(x, y, batch_size, device=device))

    def loader(
        self, split: str = "train", batch_size: int = 128, *, shuffle: bool = False, seed: int = 0
    ) -> torch.utils.data.DataLoader:
        """A :class:`torch.utils.data.DataLoader` over a split."""
        x, y = self.split(split)
        g = torch.Generator().manual_seed(int(seed))
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=g,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train": len(self.y_train),
            "test": len(self.y_test),
        }


# --------------------------------------------------------------------------- helpers


def _split_arrays(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _as_tensors(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, where: str
) -> tuple[torch.Tensor, ...]:
    out = []
    for name, arr in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ):
        try:
            t = torch.as_tensor(np.asarray(arr)) if not isinstance(arr, torch.Tensor) else arr
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(
                f"{where}: {name} is not a numeric array (found a {type(arr).__name__})"
            ) from exc
        if t.is_complex() or t.dtype == torch.bool and name.startswith("x"):
            raise DataError(f"{where}: {name} must hold real numbers, found {t.dtype}")
        if name.startswith("x"):
            if t.ndim < 2:
                raise DataError(
                    f"{where}: {name} must have shape (N, ...) with one sample per row, found {list(t.shape)}"
                )
            t = t.to(torch.float32)
        else:
            if t.is_floating_point() and not torch.equal(t, t.round()):
                raise DataError(f"{where}: {name} must hold integer class labels")
            t = t.to(torch.int64).reshape(-1)
        out.append(t)
    xtr, ytr, xte, yte = out
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(
            f"{where}: x and y lengths differ (train {len(xtr)} vs {len(ytr)}, test {len(xte)} vs {len(yte)})"
        )
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"{where}: train and test samples have different shapes {list(xtr.shape[1:])} and {list(xte.shape[1:])}"
        )
    if len(ytr) == 0:
        raise DataError(f"{where}: the training split is empty")
    return xtr, ytr, xte, yte


def _num_classes(*ys: torch.Tensor, declared: int | None = None, where: str = "data") -> int:
    """The number of classes: the source's own count when it has one, else the largest label + 1."""
    lo = min(int(y.min()) for y in ys if len(y))
    if lo < 0:
        raise DataError(f"{where}: class labels must be >= 0, found {lo}")
    hi = max(int(y.max()) for y in ys if len(y))
    if declared is None:
        return hi + 1
    if hi >= declared:
        raise DataError(f"{where}: label {hi} is out of range for {declared} classes")
    return int(declared)


def _dir(arg: str, name: str) -> Path:
    if not arg:
        raise DataError(f"data spec '{name}' needs a folder: '{name}:DIR'")
    path = Path(os.path.expanduser(arg))
    if not path.is_dir():
        raise DataError(f"{name}: no such folder: {arg}")
    return path


# --------------------------------------------------------------------------- sources


def _load_digits(arg: str) -> tuple[torch.Tensor, ...]:
    if arg:
        raise DataError(f"data spec 'digits' takes no argument, got 'digits:{arg}'")
    images, target = _digits_arrays()
    x = (images.astype(np.float32) / 16.0)[:, None, :, :]
    return (
        *_as_tensors(*_split_arrays(x, target.astype(np.int64), 0.2, seed=0), where="digits"),
        10,
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as ``(images (1797, 8, 8), target)``, read once per process.

    The CSV that ``sklearn.datasets.load_digits`` reads is parsed directly when it can
    be found, which skips importing ``sklearn.datasets`` (seconds on a small machine).
    """
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        csv = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",")
            images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
            break
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        images, target = d.images, d.target
    images.setflags(write=False)
    target.setflags(write=False)
    return images, target


def _parse_options(arg: str, defaults: dict[str, Any], where: str) -> dict[str, Any]:
    opts = dict(defaults)
    if not arg:
        return opts
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in defaults:
            raise DataError(
                f"{where}: bad option {item!r}; options are {', '.join(f'{k}=...' for k in defaults)}"
            )
        try:
            if key == "shape":
                opts[key] = tuple(int(v) for v in value.lower().split("x"))
            else:
                opts[key] = type(defaults[key])(value)
        except ValueError as exc:
            raise DataError(f"{where}: bad value for {key}: {value!r}") from exc
    return opts


def _load_synthetic(arg: str) -> tuple[torch.Tensor, ...]:
    opts = _parse_options(
        arg,
        {"train": 512, "test": 128, "classes": 10, "shape": (1, 8, 8), "seed": 0, "noise": 1.0},
        "synthetic",
    )
    for key, ok, rule in (
        ("train", opts["train"] >= 1, "at least 1"),
        ("test", opts["test"] >= 0, "at least 0"),
        ("classes", opts["classes"] >= 2, "at least 2"),
        ("shape", all(s >= 1 for s in opts["shape"]), "positive sizes like 1x8x8"),
        ("noise", opts["noise"] >= 0, "at least 0"),
    ):
        if not ok:
            value = "x".join(map(str, opts[key])) if key == "shape" else opts[key]
            raise DataError(f"synthetic: {key}={value} is invalid; it must be {rule}")
    g = torch.Generator().manual_seed(opts["seed"])
    dim = int(np.prod(opts["shape"]))
    centers = torch.randn(opts["classes"], dim, generator=g) * 1.5

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, opts["classes"], (n,), generator=g)
        x = centers[y] + opts["noise"] * torch.randn(n, dim, generator=g)
        return x.reshape(n, *opts["shape"]), y

    xtr, ytr = draw(opts["train"])
    xte, yte = draw(opts["test"])
    return (*_as_tensors(xtr, ytr, xte, yte, where="synthetic"), opts["classes"])


def _open_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc})") from exc
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not."""
    raw = _open_maybe_gzip(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    dtype_code, ndim = raw[2], raw[3]
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise DataError(f"{path}: unknown IDX data type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dt = np.dtype(dtypes[dtype_code])
    expected = int(np.prod(dims)) * dt.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: expected {expected} data bytes for shape {list(dims)}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dt, offset=header).reshape(dims)


def _find(folder: Path, candidates: list[str], what: str) -> Path:
    for name in candidates:
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    raise DataError(f"{folder}: missing {what} (looked for {', '.join(candidates)}[.gz])")


def _load_mnist(arg: str) -> tuple[torch.Tensor, ...]:
    folder = _dir(arg, "mnist")
    if not any(folder.glob("*idx*")) and (folder / "raw").is_dir():
        folder = folder / "raw"
    parts = {}
    for key, stem, kind in (
        ("x_train", "train", "images-idx3"),
        ("y_train", "train", "labels-idx1"),
        ("x_test", "t10k", "images-idx3"),
        ("y_test", "t10k", "labels-idx1"),
    ):
        names = [f"{stem}-{kind}-ubyte", f"{stem}-{kind.replace('-idx', '.idx')}-ubyte"]
        parts[key] = read_idx(_find(folder, names, f"{stem} {kind.split('-')[0]}"))
    for split in ("train", "test"):
        if parts[f"x_{split}"].ndim != 3 or parts[f"y_{split}"].ndim != 1:
            raise DataError(f"mnist: {split} images must be 3-D and labels 1-D")
    x_train = parts["x_train"].astype(np.float32)[:, None] / 255.0
    x_test = parts["x_test"].astype(np.float32)[:, None] / 255.0
    return (
        *_as_tensors(
            x_train,
            parts["y_train"].astype(np.int64),
            x_test,
            parts["y_test"].astype(np.int64),
            "mnist",
        ),
        10,
    )


class _Refused(pickle.UnpicklingError):
    """A pickle asked for a global outside the allowed list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain Python containers."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise _Refused(
            f"refusing to load {module}.{name}: only numpy arrays and plain data are allowed"
        )


def restricted_unpickle(data: bytes, *, where: str = "pickle") -> Any:
    """Unpickle ``data`` allowing only numpy arrays, lists, dicts, strings and numbers.

    Any other global (a function, a class) is refused before it is called.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DataError(f"{where}: {exc}") from exc
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        struct.error,
        IndexError,
        AttributeError,
        ImportError,
    ) as exc:
        raise DataError(
            f"{where}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})"
        ) from exc


def _unpickle_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    obj = restricted_unpickle(path.read_bytes(), where=str(path))
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    obj = {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    key = label_key.decode()
    if "data" not in obj or key not in obj:
        raise DataError(f"{path}: missing 'data' or '{key}' entries")
    try:
        x = np.asarray(obj["data"], dtype=np.uint8)
        y = np.asarray(obj[key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(
            f"{path}: 'data' must be uint8 pixels and '{key}' integers ({exc})"
        ) from exc
    if x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise DataError(
            f"{path}: expected data of shape (N, 3072) and N labels, found {list(x.shape)} and {len(y)}"
        )
    return x.reshape(-1, 3, 32, 32), y


def _cifar(
    arg: str,
    name: str,
    train_files: list[str],
    test_files: list[str],
    sub: str,
    label: bytes,
    classes: int,
) -> tuple[Any, ...]:
    folder = _dir(arg, name)
    if not (folder / test_files[0]).is_file() and (folder / sub).is_dir():
        folder = folder / sub
    for f in train_files + test_files:
        if not (folder / f).is_file():
            raise DataError(f"{name}: missing {f} in {folder}")
    tr = [_unpickle_batch(folder / f, label) for f in train_files]
    te = [_unpickle_batch(folder / f, label) for f in test_files]
    x_train = np.concatenate([a for a, _ in tr]).astype(np.float32) / 255.0
    x_test = np.concatenate([a for a, _ in te]).astype(np.float32) / 255.0
    return (
        *_as_tensors(
            x_train,
            np.concatenate([b for _, b in tr]),
            x_test,
            np.concatenate([b for _, b in te]),
            name,
        ),
        classes,
    )


def _load_cifar10(arg: str) -> tuple[torch.Tensor, ...]:
    return _cifar(
        arg,
        "cifar10",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "cifar-10-batches-py",
        b"labels",
        10,
    )


def _load_cifar100(arg: str) -> tuple[torch.Tensor, ...]:
    return _cifar(arg, "cifar100", ["train"], ["test"], "cifar-100-python", b"fine_labels", 100)


def _load_tensors(arg: str) -> tuple[torch.Tensor, ...]:
    if not arg:
        raise DataError("data spec 'tensors' needs a file: 'tensors:FILE.npz' or 'tensors:FILE.pt'")
    path = Path(os.path.expanduser(arg))
    if not path.is_file():
        raise DataError(f"tensors: no such file: {arg}")
    keys = ("x_train", "y_train", "x_test", "y_test")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in keys if k not in z.files]
                if missing:
                    raise DataError(
                        f"{path}: missing arrays {', '.join(missing)} (has {', '.join(z.files)})"
                    )
                arrays = [z[k] for k in keys]
        except DataError:
            raise
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            detail = (
                "it holds pickled objects"
                if "pickle" in str(exc)
                else f"{type(exc).__name__}: {exc}"
            )
            raise DataError(
                f"{path}: not a readable .npz file of numeric arrays ({detail})"
            ) from exc
    elif path.suffix in (".pt", ".pth"):
        from .checkpoint import safe_torch_load

        obj = safe_torch_load(path, error=DataError, what="tensor file")
        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a dict with {', '.join(keys)}")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise DataError(f"{path}: missing tensors {', '.join(missing)}")
        arrays = [obj[k] for k in keys]
    else:
        raise DataError(f"tensors: {path} must end in .npz or .pt")
    return _as_tensors(*arrays, where=str(path))


_IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _read_image_folder(
    folder: Path, classes: list[str]
) -> tuple[list[np.ndarray], list[int], list[Path]]:
    from PIL import Image, UnidentifiedImageError

    images, labels, paths = [], [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in _IMAGE_EXTS)
        for p in files:
            try:
                with Image.open(p) as im:
                    images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"folder: cannot read image {p} ({exc})") from exc
            labels.append(label)
            paths.append(p)
    return images, labels, paths


def _stack_images(images: list[np.ndarray], paths: list[Path]) -> np.ndarray:
    shape = images[0].shape
    for im, p in zip(images, paths, strict=True):
        if im.shape != shape:
            raise DataError(
                f"folder: image {p} is {im.shape[1]}x{im.shape[0]}, others are {shape[1]}x{shape[0]}; resize them to one size"
            )
    x = np.stack(images).astype(np.float32) / 255.0  # N, H, W, 3
    x = x.transpose(0, 3, 1, 2)
    if np.allclose(x[:, 0], x[:, 1]) and np.allclose(x[:, 1], x[:, 2]):
        x = x[:, :1]
    return x


def _class_dirs(folder: Path) -> list[str]:
    """Sorted class sub-folder names; hidden folders (``.ipynb_checkpoints``, ``.git``) are not classes."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _load_folder(arg: str) -> tuple[torch.Tensor, ...]:
    folder = _dir(arg, "folder")
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        classes = _class_dirs(folder / "train")
        test_classes = _class_dirs(folder / "test")
        if not classes:
            raise DataError(f"folder: {folder}/train has no class sub-folders")
        extra = sorted(set(test_classes) - set(classes))
        if extra:
            raise DataError(
                f"folder: {folder}/test has classes not in {folder}/train: {', '.join(extra)}"
            )
        tr_im, tr_y, tr_p = _read_image_folder(folder / "train", classes)
        te_im, te_y, te_p = _read_image_folder(folder / "test", test_classes)
        te_y = [classes.index(test_classes[i]) for i in te_y]
        if not tr_im:
            raise DataError(f"folder: no images found in {folder}/train")
        x = _stack_images(tr_im + te_im, tr_p + te_p)
        n = len(tr_im)
        return (
            *_as_tensors(x[:n], np.array(tr_y), x[n:], np.array(te_y, dtype=np.int64), str(folder)),
            len(classes),
        )
    classes = _class_dirs(folder)
    if not classes:
        raise DataError(f"folder: {folder} has no class sub-folders")
    images, labels, paths = _read_image_folder(folder, classes)
    if len(images) < 2:
        raise DataError(f"folder: found {len(images)} images in {folder}; need at least 2")
    x = _stack_images(images, paths)
    return (
        *_as_tensors(
            *_split_arrays(x, np.array(labels, dtype=np.int64), 0.2, seed=0), where=str(folder)
        ),
        len(classes),
    )


# Each loader takes the text after "name:" and returns (x_train, y_train, x_test, y_test)
# and, when the source knows it, the number of classes as a fifth item.
DATA_SOURCES: dict[str, Callable[[str], tuple[Any, ...]]] = {
    "digits": _load_digits,
    "synthetic": _load_synthetic,
    "mnist": _load_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "tensors": _load_tensors,
    "folder": _load_folder,
}


def check_finite_inputs(
    splits: DataSplits | None = None, *, spec: str | None = None, **xs: Any
) -> None:
    """Refuse inputs holding NaN or Inf: the error names the data, not the learning rate.

    Pass loaded :class:`DataSplits`, or ``spec=`` and the arrays as ``x_train=..., x_test=...``.
    """
    if splits is not None:
        spec = splits.spec.spec
        xs = {"x_train": splits.x_train, "x_test": splits.x_test}
    for key, label in (("x_train", "training"), ("x_test", "test")):
        x = xs.get(key)
        if x is None or not x.is_floating_point():
            continue
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise DataError(f"data {spec!r} has {bad} non-finite values in the {label} inputs")


def load_data(
    spec: str | DataSpec = "digits",
    *,
    samples: int | None = None,
    seed: int = 0,
    normalize: bool = True,
) -> DataSplits:
    """Load a data source by spec string (see the module docstring for the specs).

    Args:
        spec: e.g. ``"digits"``, ``"cifar10:~/data/cifar"``, ``"tensors:data.npz"``.
        samples: keep a seeded random subset of this many training samples.
        seed: the seed of that subset.
        normalize: standardise each input channel with the training split's mean and std.
    """
    if isinstance(spec, DataSpec):
        samples, seed, normalize, spec = spec.samples, spec.seed, spec.normalize, spec.spec
    name, _, arg = str(spec).partition(":")
    if name not in DATA_SOURCES:
        raise DataError(f"unknown data source {name!r}: choose one of {', '.join(DATA_SOURCES)}")
    loaded = DATA_SOURCES[name](arg)
    x_train, y_train, x_test, y_test = loaded[:4]
    num_classes = _num_classes(
        y_train, y_test, declared=loaded[4] if len(loaded) > 4 else None, where=name
    )
    check_finite_inputs(spec=str(spec), x_train=x_train, x_test=x_test)
    x_train, y_train = subsample(x_train, y_train, samples, seed=seed)
    mean = std = None
    if normalize:
        dims = [0] + list(range(2, x_train.ndim))
        m = x_train.mean(dim=dims, keepdim=True)
        s = (
            x_train.std(dim=dims, keepdim=True).clamp_min(1e-6)
            if len(x_train) > 1
            else torch.ones_like(m)
        )
        x_train, x_test = (x_train - m) / s, (x_test - m) / s
        mean, std = m.flatten().tolist(), s.flatten().tolist()
    return DataSplits(
        x_train.contiguous(),
        y_train,
        x_test.contiguous(),
        y_test,
        num_classes,
        DataSpec(str(spec), samples, seed, normalize),
        mean,
        std,
    )
