"""The bundled byte-level corpus and the text-file source."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest
import torch

from sharpscope.errors import DataError
from sharpscope.problem.data.text import (
    TEST_FILES,
    TRAIN_FILES,
    VOCAB_SIZE,
    file_corpus,
    load_text,
    load_text_source,
    load_textfile,
    load_textfile_source,
    parse_text_options,
    sample_windows,
    stdlib_corpus,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _occurs(window: torch.Tensor, data: bytes) -> bool:
    return bytes(window.to(torch.uint8).tolist()) in data


def test_corpus_is_the_listed_stdlib_files_split_by_file():
    corpus = stdlib_corpus()
    assert not set(TRAIN_FILES) & set(TEST_FILES)
    assert corpus.train_files == TRAIN_FILES and corpus.test_files == TEST_FILES
    assert corpus.missing == ()  # every listed file exists in CPython 3.10-3.13
    assert corpus.train == b"".join((STDLIB / f).read_bytes() for f in TRAIN_FILES)
    assert corpus.test == b"".join((STDLIB / f).read_bytes() for f in TEST_FILES)
    assert len(corpus.train) == sum(os.path.getsize(STDLIB / f) for f in TRAIN_FILES)
    d = corpus.describe()
    assert d["train_bytes"] == len(corpus.train) and d["vocab"] == VOCAB_SIZE == 256


def test_windows_are_deterministic_and_seeded():
    a = load_text(context=32, train_windows=20, test_windows=10, seed=3)
    b = load_text(context=32, train_windows=20, test_windows=10, seed=3)
    for s, t in zip(a, b, strict=True):
        assert torch.equal(s, t)
    c = load_text(context=32, train_windows=20, test_windows=10, seed=4)
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[2], c[2])
    # more training windows extend the same stream and leave the test windows alone
    d = load_text(context=32, train_windows=30, test_windows=10, seed=3)
    assert torch.equal(d[0][:20], a[0]) and torch.equal(d[2], a[2])


def test_targets_are_inputs_shifted_by_one_and_windows_come_from_their_split():
    corpus = stdlib_corpus()
    x, y, xt, yt = load_text(context=24, train_windows=50, test_windows=30, seed=0)
    assert x.shape == y.shape == (50, 24) and xt.shape == yt.shape == (30, 24)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(xt[:, 1:], yt[:, :-1])
    assert int(x.min()) >= 0 and int(x.max()) < 256
    for i in range(50):
        assert _occurs(torch.cat([x[i], y[i, -1:]]), corpus.train)
    for i in range(30):
        assert _occurs(torch.cat([xt[i], yt[i, -1:]]), corpus.test)


def test_no_test_file_reaches_training(tmp_path):
    """Training files hold only 'a', test files only 'b': windows never mix them."""
    for name in ("t1.py", "t2.py"):
        (tmp_path / name).write_bytes(b"a" * 300)
    for name in ("e1.py", "e2.py"):
        (tmp_path / name).write_bytes(b"b" * 100)
    x, y, xt, yt = load_text(
        context=16,
        train_windows=40,
        test_windows=40,
        files=["t1.py", "e1.py", "t2.py", "e2.py"],
        test_files=["e1.py", "e2.py"],
        root=tmp_path,
    )
    assert bool((torch.cat([x, y]) == ord("a")).all())
    assert bool((torch.cat([xt, yt]) == ord("b")).all())


def test_window_starts_cover_the_last_valid_start():
    data = bytes(range(10))
    x, y = sample_windows(data, 9, 5, seed=0)  # exactly one window fits
    assert torch.equal(x, torch.arange(9).repeat(5, 1)) and torch.equal(y, x + 1)
    x, _ = sample_windows(bytes(range(12)), 9, 200, seed=0)
    assert set(x[:, 0].tolist()) == {0, 1, 2}


def test_missing_stdlib_file_is_skipped_with_a_note(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n" * 20)
    (tmp_path / "b.py").write_text("y = 2\n" * 20)
    with pytest.warns(UserWarning, match="skipped 1 corpus file.*gone.py"):
        corpus = stdlib_corpus(["a.py", "gone.py", "b.py"], test_files=["b.py"], root=tmp_path)
    assert corpus.missing == ("gone.py",) and corpus.train_files == ("a.py",)
    with pytest.raises(DataError, match="no test file"):
        stdlib_corpus(["a.py"], test_files=["b2.py"], root=tmp_path)


def test_textfile_split_is_the_last_tenth(tmp_path):
    path = tmp_path / "corpus.txt"
    raw = ("héllo wörld\n" * 20).encode()
    path.write_bytes(raw)
    corpus = file_corpus(path)
    n_test = -(-len(raw) // 10)  # ceil
    assert corpus.test == raw[-n_test:] and corpus.train == raw[:-n_test]
    x, y, xt, yt = load_textfile(path, context=8, train_windows=10, test_windows=5)
    for i in range(10):
        assert _occurs(torch.cat([x[i], y[i, -1:]]), corpus.train)
    for i in range(5):
        assert _occurs(torch.cat([xt[i], yt[i, -1:]]), corpus.test)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_refusals_are_one_line(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"abc\x00\x01\x02")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("naïve café".encode("latin-1"))  # 0xef at byte offset 2
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    short = tmp_path / "short.txt"
    short.write_bytes(b"0123456789" * 10)  # 100 bytes: 90 train, 10 test
    cases = [
        (lambda: load_textfile(binary), [str(binary), "binary", "offset 3"]),
        (lambda: load_textfile(latin), [str(latin), "not UTF-8", "0xef", "offset 2"]),
        (lambda: load_textfile(empty), [str(empty), "empty"]),
        (lambda: load_textfile(tmp_path / "nope.txt"), ["nope.txt", "no such file"]),
        (lambda: load_textfile(short, context=200), ["train split", "context 200", "90 bytes"]),
        (lambda: load_textfile(short, context=20), ["test split", "context 20", "10 bytes"]),
        (lambda: load_text(context=10**7), ["text (train split)", "too long"]),
    ]
    for call, words in cases:
        with pytest.raises(DataError) as info:
            call()
        msg = _one_line(info)
        for w in words:
            assert w in msg, (w, msg)


def test_a_binary_stdlib_file_is_refused(tmp_path):
    (tmp_path / "a.py").write_bytes(b"ok\n" * 50)
    (tmp_path / "b.py").write_bytes(b"\xff\xfe" + b"x" * 50)
    with pytest.raises(DataError) as info:
        stdlib_corpus(["a.py", "b.py"], test_files=["b.py"], root=tmp_path)
    assert "b.py" in _one_line(info) and "offset 0" in str(info.value)


def test_spec_options():
    assert parse_text_options("") == {
        "context": 128,
        "windows": 2048,
        "test_windows": 512,
        "seed": 0,
    }
    x, y, xt, yt, classes = load_text_source("context=8,windows=5,test_windows=3,seed=2")
    assert x.shape == (5, 8) and xt.shape == (3, 8) and classes == 256
    ref = load_text(context=8, train_windows=5, test_windows=3, seed=2)
    assert torch.equal(x, ref[0]) and torch.equal(yt, ref[3])
    for arg, words in (
        ("context", "bad option 'context'"),
        ("size=3", "options are context=..., windows=..., test_windows=..., seed=..."),
        ("context=abc", "bad value for context: 'abc'"),
        ("windows=0", "windows=0 is invalid"),
        ("context=0", "context=0 is invalid"),
    ):
        with pytest.raises(DataError) as info:
            load_text_source(arg)
        assert words in _one_line(info)


def test_textfile_spec(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 10, encoding="utf-8")
    x, y, xt, yt, classes = load_textfile_source(f"{path}?context=6,windows=4,test_windows=2")
    assert x.shape == (4, 6) and xt.shape == (2, 6) and classes == 256
    ref = load_textfile(path, context=6, train_windows=4, test_windows=2)
    assert torch.equal(x, ref[0]) and torch.equal(xt, ref[2])
    x2, *_ = load_textfile_source(f"{path}?context=6")
    assert x2.shape == (2048, 6)
    with pytest.raises(DataError) as info:
        load_textfile_source("")
    assert "needs a file" in _one_line(info)
    with pytest.raises(DataError) as info:
        load_textfile_source(f"{path}?ctx=3")
    assert "textfile: bad option 'ctx=3'" in _one_line(info)


def test_docstring_examples_run():
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module("sharpscope.problem.data.text"), optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0 and result.failed == 0
