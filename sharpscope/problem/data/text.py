"""Byte-level language-modelling data that needs no download.

Two sources, both returning next-token windows ``(x, y)`` of int64 token ids
(bytes, vocabulary 256): ``x`` is ``(N, context)`` and ``y`` is ``x`` shifted left by
one token, ``y[i, t] = corpus[start_i + t + 1]``.

=================================  ==================================================
spec                               what it loads
=================================  ==================================================
``text[:k=v,..]``                  the bundled corpus: 30 pure-Python standard-library
                                   modules of the running interpreter, split by file
``textfile:PATH[?k=v,..]``         a user's UTF-8 text file; the last 10% of its bytes
                                   are the test split (cut on a byte boundary)
=================================  ==================================================

Options (both specs, same ``key=value,...`` syntax as ``synthetic``): ``context``
(tokens per window, default 128), ``windows`` (training windows, default 2048),
``test_windows`` (default 512), ``seed`` (default 0). Window starts are drawn
uniformly with replacement from a generator seeded by ``(seed, split)``, so the
same options always give the same windows and changing ``windows`` never changes
the test windows.

The bundled corpus reads the files of :data:`TRAIN_FILES` and :data:`TEST_FILES`
(each listed file is present in CPython 3.10 to 3.13) from
``sysconfig.get_paths()["stdlib"]`` and concatenates each split in list order. A file
missing from an unusual installation is skipped with a warning and listed in
:attr:`TextCorpus.missing`. The files, hence the corpus, differ between Python
versions; with CPython 3.11.7 the corpus holds 632,052 training bytes (25 files)
and 85,168 test bytes (5 files).

Example:
    >>> x_train, y_train, x_test, y_test = load_text(context=16, train_windows=4, test_windows=2)
    >>> tuple(x_train.shape), x_train.dtype, bool((x_train[:, 1:] == y_train[:, :-1]).all())
    ((4, 16), torch.int64, True)
"""

from __future__ import annotations

import functools
import math
import os
import sysconfig
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import DataError

__all__ = [
    "VOCAB_SIZE",
    "TRAIN_FILES",
    "TEST_FILES",
    "TEXT_DEFAULTS",
    "TextCorpus",
    "stdlib_corpus",
    "file_corpus",
    "read_text_file",
    "sample_windows",
    "load_text",
    "load_textfile",
    "parse_text_options",
    "load_text_source",
    "load_textfile_source",
]

VOCAB_SIZE = 256

#: Standard-library modules of the training split (present in CPython 3.10-3.13).
TRAIN_FILES: tuple[str, ...] = (
    "abc.py",
    "bisect.py",
    "calendar.py",
    "colorsys.py",
    "contextlib.py",
    "copy.py",
    "csv.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fnmatch.py",
    "functools.py",
    "glob.py",
    "graphlib.py",
    "heapq.py",
    "ipaddress.py",
    "keyword.py",
    "numbers.py",
    "operator.py",
    "pprint.py",
    "random.py",
    "reprlib.py",
    "sched.py",
    "statistics.py",
    "weakref.py",
)
#: Standard-library modules of the test split (never in training).
TEST_FILES: tuple[str, ...] = ("fractions.py", "queue.py", "shlex.py", "string.py", "textwrap.py")

#: Options of the ``text`` and ``textfile`` specs and their defaults.
TEXT_DEFAULTS: dict[str, int] = {"context": 128, "windows": 2048, "test_windows": 512, "seed": 0}

_TEST_FRACTION = 0.1


@dataclass(frozen=True)
class TextCorpus:
    """Train and test bytes of a corpus and where they came from."""

    train: bytes
    test: bytes
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    source: str
    missing: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "train_bytes": len(self.train),
            "test_bytes": len(self.test),
            "train_files": list(self.train_files),
            "test_files": list(self.test_files),
            "missing": list(self.missing),
            "vocab": VOCAB_SIZE,
        }


def read_text_file(path: str | os.PathLike[str], *, where: str | None = None) -> bytes:
    """The bytes of a UTF-8 text file, refusing empty, binary and non-UTF-8 files.

    A NUL byte marks a binary file; an invalid UTF-8 sequence is reported with the byte
    offset where it starts. Raises :class:`DataError` (one line naming the file).
    """
    p = Path(os.path.expanduser(str(path)))
    name = where or str(path)
    if not p.is_file():
        raise DataError(f"{name}: no such file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    if not raw:
        raise DataError(f"{name}: the file is empty")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{name}: a binary file, not text (NUL byte at byte offset {nul})")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{name}: not UTF-8 text (invalid byte 0x{raw[exc.start]:02x} at byte offset {exc.start})"
        ) from None
    return raw


def stdlib_corpus(
    files: Sequence[str] | None = None,
    *,
    test_files: Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> TextCorpus:
    """The bundled corpus: standard-library source files, split by file.

    Args:
        files: the file names to read (default :data:`TRAIN_FILES` + :data:`TEST_FILES`).
        test_files: which of them form the test split (default :data:`TEST_FILES`); a
            file is in exactly one split.
        root: the folder holding the files (default the running interpreter's stdlib).
    """
    names = tuple(TRAIN_FILES + TEST_FILES if files is None else (str(f) for f in files))
    tests = frozenset(TEST_FILES if test_files is None else (str(f) for f in test_files))
    if root is None:  # the installation's files do not change: read them once per process
        return _cached_stdlib_corpus(names, tests, sysconfig.get_paths()["stdlib"])
    return _stdlib_corpus(names, tests, str(root))


@functools.lru_cache(maxsize=4)
def _cached_stdlib_corpus(names: tuple[str, ...], tests: frozenset[str], folder: str) -> TextCorpus:
    return _stdlib_corpus(names, tests, folder)


def _stdlib_corpus(names: tuple[str, ...], tests: frozenset[str], folder: str) -> TextCorpus:
    if not names:
        raise DataError("text: no corpus files given")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"text: corpus files listed twice: {', '.join(dup)}")
    train: list[bytes] = []
    test: list[bytes] = []
    used_train: list[str] = []
    used_test: list[str] = []
    missing: list[str] = []
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DataError(f"text: corpus file {name!r} must be a name inside {folder}")
        path = Path(folder) / name
        if not path.is_file():
            missing.append(name)
            continue
        data = read_text_file(path)
        if name in tests:
            test.append(data)
            used_test.append(name)
        else:
            train.append(data)
            used_train.append(name)
    if missing:
        warnings.warn(
            f"text: skipped {len(missing)} corpus file(s) missing from {folder}: {', '.join(missing)}",
            stacklevel=3,
        )
    for split, used in (("training", used_train), ("test", used_test)):
        if not used:
            raise DataError(f"text: no {split} file of the corpus was found in {folder}")
    return TextCorpus(
        b"".join(train),
        b"".join(test),
        tuple(used_train),
        tuple(used_test),
        f"stdlib:{folder}",
        tuple(missing),
    )


def file_corpus(
    path: str | os.PathLike[str], *, test_fraction: float = _TEST_FRACTION
) -> TextCorpus:
    """A user's UTF-8 text file as a corpus: the last ``test_fraction`` of its bytes is the test split.

    The cut is on a byte boundary (it may fall inside a multi-byte character: the
    tokens are bytes, so nothing is lost).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise DataError(f"textfile: test fraction must be between 0 and 1, got {test_fraction}")
    raw = read_text_file(path)
    cut = len(raw) - int(math.ceil(len(raw) * float(test_fraction)))
    return TextCorpus(raw[:cut], raw[cut:], (str(path),), (str(path),), f"textfile:{path}")


def sample_windows(
    data: bytes, context: int, n: int, *, seed: int, stream: int = 0, where: str = "text"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded next-token windows of ``context`` tokens from ``data``.

    Window starts are uniform over ``[0, len(data) - context - 1]`` (with replacement),
    drawn from ``numpy.random.default_rng([seed, stream])``.
    Returns ``(x, y)``, both int64 of shape ``(n, context)``, ``y`` = ``x`` shifted by one.
    """
    context, n = int(context), int(n)
    if context < 1:
        raise DataError(f"{where}: context must be at least 1, got {context}")
    if n < 0:
        raise DataError(f"{where}: the number of windows must be at least 0, got {n}")
    if len(data) < context + 1:
        raise DataError(
            f"{where}: context {context} is too long for {len(data)} bytes "
            f"(a window needs context + 1 = {context + 1} bytes)"
        )
    tokens = np.frombuffer(data, dtype=np.uint8)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(stream)])
    starts = rng.integers(0, len(data) - context, size=n)  # high is exclusive
    idx = starts[:, None] + np.arange(context + 1)[None, :]
    win = torch.from_numpy(tokens[idx].astype(np.int64))
    return win[:, :-1].contiguous(), win[:, 1:].contiguous()


def _windows(
    corpus: TextCorpus, context: int, train_windows: int, test_windows: int, seed: int, where: str
) -> tuple[torch.Tensor, ...]:
    if int(train_windows) < 1:
        raise DataError(f"{where}: windows must be at least 1, got {train_windows}")
    x_train, y_train = sample_windows(
        corpus.train, context, train_windows, seed=seed, stream=0, where=f"{where} (train split)"
    )
    x_test, y_test = sample_windows(
        corpus.test, context, test_windows, seed=seed, stream=1, where=f"{where} (test split)"
    )
    return x_train, y_train, x_test, y_test


def load_text(
    *,
    context: int = TEXT_DEFAULTS["context"],
    train_windows: int = TEXT_DEFAULTS["windows"],
    test_windows: int = TEXT_DEFAULTS["test_windows"],
    seed: int = TEXT_DEFAULTS["seed"],
    files: Sequence[str] | None = None,
    test_files: Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded windows of the bundled corpus: ``(x_train, y_train, x_test, y_test)``.

    See :func:`stdlib_corpus` for ``files``, ``test_files`` and ``root``, and
    :func:`sample_windows` for the windows.
    """
    corpus = stdlib_corpus(files, test_files=test_files, root=root)
    return _windows(corpus, context, train_windows, test_windows, seed, "text")  # type: ignore[return-value]


def load_textfile(
    path: str | os.PathLike[str],
    *,
    context: int = TEXT_DEFAULTS["context"],
    train_windows: int = TEXT_DEFAULTS["windows"],
    test_windows: int = TEXT_DEFAULTS["test_windows"],
    seed: int = TEXT_DEFAULTS["seed"],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded windows of a user's text file (see :func:`file_corpus`)."""
    corpus = file_corpus(path)
    return _windows(corpus, context, train_windows, test_windows, seed, str(path))  # type: ignore[return-value]


def parse_text_options(arg: str, *, where: str = "text") -> dict[str, int]:
    """``"context=64,windows=100"`` -> the :data:`TEXT_DEFAULTS` with those values.

    The syntax of ``synthetic``'s options: comma-separated ``key=value``; unknown keys
    and non-integer values are refused with one line.
    """
    opts = dict(TEXT_DEFAULTS)
    if not arg:
        return opts
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in TEXT_DEFAULTS:
            raise DataError(
                f"{where}: bad option {item!r}; options are "
                f"{', '.join(f'{k}=...' for k in TEXT_DEFAULTS)}"
            )
        try:
            opts[key] = int(value)
        except ValueError:
            raise DataError(f"{where}: bad value for {key}: {value!r}") from None
    for key, low in (("context", 1), ("windows", 1), ("test_windows", 0)):
        if opts[key] < low:
            raise DataError(f"{where}: {key}={opts[key]} is invalid; it must be at least {low}")
    return opts


def load_text_source(arg: str) -> tuple[Any, ...]:
    """The ``text[:options]`` data source, in the shape of ``DATA_SOURCES`` loaders.

    Returns ``(x_train, y_train, x_test, y_test, 256)``.
    """
    o = parse_text_options(arg, where="text")
    return (
        *load_text(
            context=o["context"],
            train_windows=o["windows"],
            test_windows=o["test_windows"],
            seed=o["seed"],
        ),
        VOCAB_SIZE,
    )


def load_textfile_source(arg: str) -> tuple[Any, ...]:
    """The ``textfile:PATH[?options]`` data source (options after the last ``?``)."""
    path, _, options = arg.rpartition("?") if "?" in arg else (arg, "", "")
    if not path:
        raise DataError("data spec 'textfile' needs a file: 'textfile:PATH[?context=...]'")
    o = parse_text_options(options, where="textfile")
    return (
        *load_textfile(
            path,
            context=o["context"],
            train_windows=o["windows"],
            test_windows=o["test_windows"],
            seed=o["seed"],
        ),
        VOCAB_SIZE,
    )
