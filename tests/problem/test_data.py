"""Every data source, loaded from small files in the real on-disk formats, and every way it can fail."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from _fixtures import (
    MNIST_NAMES,
    hostile_cifar_batch,
    hostile_torch_file,
    idx_bytes,
    numpy_pickle,
    tensor_arrays,
    write_cifar10,
    write_cifar100,
    write_idx,
    write_image_folder,
    write_mnist,
    write_npz,
    write_pt,
)

from sharpscope.errors import DataError, SharpscopeError
from sharpscope.problem.data import (
    DataSpec,
    iterate_batches,
    load_data,
    read_idx,
    restricted_unpickle,
    subsample,
)


def _raw(spec: str, **kw):
    return load_data(spec, normalize=False, **kw)


# --------------------------------------------------------------------------- sources


@pytest.mark.parametrize("gz", [False, True], ids=["idx", "idx.gz"])
def test_mnist_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = _raw(f"mnist:{tmp_path}")
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    expected = torch.from_numpy(arrays["x_train"].astype(np.float32) / 255.0)[:, None]
    torch.testing.assert_close(data.x_train, expected, rtol=0, atol=0)
    assert data.y_train.tolist() == arrays["y_train"].tolist()
    assert data.y_test.tolist() == arrays["y_test"].tolist()
    assert data.y_train.dtype == torch.int64 and data.x_train.dtype == torch.float32


def test_mnist_raw_subfolder_as_torchvision_stores_it(tmp_path):
    write_mnist(tmp_path / "raw", gz=True)
    assert len(_raw(f"mnist:{tmp_path}").y_train) == 24


def test_read_idx_round_trips_every_dtype(tmp_path):
    for dtype in (np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"):
        arr = (
            (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
            if dtype != np.uint8
            else np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        )
        path = write_idx(tmp_path / f"a{np.dtype(dtype).str}", arr)
        np.testing.assert_array_equal(read_idx(path), arr)


def _cifar_expected(batches: dict, names: list[str], key: bytes) -> tuple[torch.Tensor, list[int]]:
    x = (
        np.concatenate([batches[n][b"data"] for n in names])
        .reshape(-1, 3, 32, 32)
        .astype(np.float32)
        / 255.0
    )
    y = [v for n in names for v in batches[n][key]]
    return torch.from_numpy(x), y


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "cifar-10-batches-py"])
def test_cifar10_python_batches(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    batches = write_cifar10(folder)
    data = _raw(f"cifar10:{tmp_path}")
    x, y = _cifar_expected(batches, [f"data_batch_{i}" for i in range(1, 6)], b"labels")
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    torch.testing.assert_close(data.x_train, x, rtol=0, atol=0)
    assert data.y_train.tolist() == y
    xt, yt = _cifar_expected(batches, ["test_batch"], b"labels")
    torch.testing.assert_close(data.x_test, xt, rtol=0, atol=0)
    assert data.y_test.tolist() == yt


def test_cifar_fixture_is_pickled_like_the_real_files(tmp_path):
    write_cifar10(tmp_path)
    raw = (tmp_path / "data_batch_1").read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw
    assert b"labels" in raw


def test_cifar100_fine_labels(tmp_path):
    files = write_cifar100(tmp_path / "cifar-100-python")
    data = _raw(f"cifar100:{tmp_path}")
    assert data.num_classes == 100 and data.input_shape == (3, 32, 32)
    assert data.y_train.tolist() == files["train"][b"fine_labels"]
    assert data.y_test.tolist() == files["test"][b"fine_labels"]
    x, _ = _cifar_expected(files, ["train"], b"fine_labels")
    torch.testing.assert_close(data.x_train, x, rtol=0, atol=0)


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_tensor_files(tmp_path, suffix):
    path = tmp_path / f"d{suffix}"
    (write_npz if suffix == ".npz" else write_pt)(path)
    arrays = tensor_arrays()
    data = _raw(f"tensors:{path}")
    assert data.input_shape == (2, 4, 4) and data.num_classes == 3
    for key in arrays:
        np.testing.assert_array_equal(getattr(data, key).numpy(), arrays[key])


def test_tensor_file_integer_valued_float_labels_are_accepted(tmp_path):
    path = tmp_path / "d.npz"
    write_npz(path, y_train=(np.arange(20) % 3).astype(np.float32))
    assert _raw(f"tensors:{path}").y_train.dtype == torch.int64


@pytest.mark.parametrize("gray", [False, True], ids=["rgb", "gray"])
def test_image_folder_class_subfolders(tmp_path, gray):
    write_image_folder(tmp_path, gray=gray)
    data = _raw(f"folder:{tmp_path}")
    assert data.input_shape == ((1, 6, 6) if gray else (3, 6, 6))
    assert data.num_classes == 3
    assert len(data.y_train) + len(data.y_test) == 12 and len(data.y_test) == 2  # seeded 80/20
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    again = _raw(f"folder:{tmp_path}")
    assert torch.equal(again.x_test, data.x_test)


def test_image_folder_ignores_hidden_folders(tmp_path):
    write_image_folder(tmp_path)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    assert _raw(f"folder:{tmp_path}").num_classes == 3


def test_image_folder_train_test_layout(tmp_path):
    from PIL import Image

    write_image_folder(tmp_path, layout="split")
    data = _raw(f"folder:{tmp_path}")
    assert (len(data.y_train), len(data.y_test), data.num_classes) == (12, 6, 3)
    assert data.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # sorted class names
    first = np.asarray(Image.open(tmp_path / "train" / "cat" / "000.png"), dtype=np.float32) / 255.0
    np.testing.assert_allclose(data.x_train[0].numpy(), first.transpose(2, 0, 1))


def test_image_folder_test_split_with_fewer_classes_keeps_train_label_numbers(tmp_path):
    write_image_folder(tmp_path, layout="split")
    for p in (tmp_path / "test" / "cat").iterdir():
        p.unlink()
    (tmp_path / "test" / "cat").rmdir()
    data = _raw(f"folder:{tmp_path}")
    assert sorted(set(data.y_test.tolist())) == [1, 2] and data.num_classes == 3


def test_digits_default():
    data = load_data()
    assert (data.input_shape, data.num_classes, len(data.y_train), len(data.y_test)) == (
        (1, 8, 8),
        10,
        1438,
        359,
    )
    assert data.spec == DataSpec("digits")


def test_digits_are_scikit_learns_digits():
    from sklearn.datasets import load_digits

    d = _raw("digits")
    ref = load_digits()
    x = torch.cat([d.x_train, d.x_test]).flatten(1).numpy() * 16.0
    y = torch.cat([d.y_train, d.y_test]).numpy()
    order = np.lexsort(np.c_[x, y].T)
    ref_order = np.lexsort(np.c_[ref.data, ref.target].T)
    np.testing.assert_array_equal(x[order], ref.data[ref_order])
    np.testing.assert_array_equal(y[order], ref.target[ref_order])


def test_synthetic_default_and_options():
    d = _raw("synthetic")
    assert (len(d.y_train), len(d.y_test), d.input_shape, d.num_classes) == (
        512,
        128,
        (1, 8, 8),
        10,
    )
    d = _raw("synthetic:train=30,test=7,classes=4,shape=2x3x5,seed=3,noise=0.5")
    assert (len(d.y_train), len(d.y_test), d.input_shape, d.num_classes) == (30, 7, (2, 3, 5), 4)
    same = _raw("synthetic:train=30,test=7,classes=4,shape=2x3x5,seed=3,noise=0.5")
    other = _raw("synthetic:train=30,test=7,classes=4,shape=2x3x5,seed=4,noise=0.5")
    assert torch.equal(d.x_train, same.x_train) and not torch.equal(d.x_train, other.x_train)


def test_synthetic_class_count_is_the_option_even_if_a_class_is_not_drawn():
    d = _raw("synthetic:train=3,test=0,classes=10")
    assert d.num_classes == 10 and len(d.y_test) == 0


# --------------------------------------------------------------------------- subsets, normalisation, batches


def test_samples_subset_is_seeded_and_reproducible():
    full = _raw("digits")
    a = _raw("digits", samples=100, seed=1)
    b = _raw("digits", samples=100, seed=1)
    c = _raw("digits", samples=100, seed=2)
    assert (
        len(a.y_train) == 100
        and torch.equal(a.x_train, b.x_train)
        and torch.equal(a.y_train, b.y_train)
    )
    assert not torch.equal(a.x_train, c.x_train)
    assert torch.equal(a.x_test, full.x_test)  # only the training split is subsampled
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in a.x_train.flatten(1).tolist())
    assert a.spec == DataSpec("digits", 100, 1, False)
    assert len(_raw("digits", samples=10_000).y_train) == 1438


@pytest.mark.parametrize("n", [0, -3])
def test_samples_must_be_positive(n):
    with pytest.raises(DataError, match="at least 1"):
        load_data("digits", samples=n)


def test_normalisation_standardises_each_channel_with_train_statistics(tmp_path):
    write_cifar10(tmp_path)
    raw = _raw(f"cifar10:{tmp_path}")
    norm = load_data(f"cifar10:{tmp_path}")
    per_channel = norm.x_train.transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_channel.std(1), torch.ones(3), atol=1e-5, rtol=0)
    mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(norm.std).view(1, 3, 1, 1)
    torch.testing.assert_close(norm.x_test, (raw.x_test - mean) / std)
    assert raw.mean is None and len(norm.mean) == 3


def test_dataspec_round_trip_and_load():
    spec = DataSpec("synthetic:train=20,test=5", samples=10, seed=2, normalize=False)
    assert DataSpec.from_dict(spec.to_dict()) == spec
    assert DataSpec.from_dict("digits") == DataSpec("digits")
    d = spec.load()
    assert len(d.y_train) == 10 and d.spec == spec
    assert torch.equal(load_data(spec).x_train, d.x_train)


def test_batches_split_and_loader():
    d = _raw("synthetic:train=50,test=10")
    batches = d.batches("train", 16)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([x for x, _ in batches]), d.x_train)
    assert [len(y) for _, y in d.batches("test", 4, samples=6, seed=1)] == [4, 2]
    assert sum(len(y) for _, y in d.loader("train", 20)) == 50
    with pytest.raises(DataError, match="unknown split 'val'"):
        d.split("val")
    assert d.describe()["train"] == 50


def test_iterate_batches_shuffle_and_drop_last():
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    plain = list(iterate_batches(x, y, 4, drop_last=True))
    assert [b[1].tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    s1 = [b[1].tolist() for b in iterate_batches(x, y, 3, shuffle=True, generator=g1)]
    s2 = [b[1].tolist() for b in iterate_batches(x, y, 3, shuffle=True, generator=g2)]
    assert s1 == s2 and sorted(sum(s1, [])) == list(range(10)) and sum(s1, []) != list(range(10))
    with pytest.raises(DataError, match="at least 1"):
        list(iterate_batches(x, y, 0))


def test_subsample_picks_rows_in_order():
    x, y = torch.arange(20.0).view(10, 2), torch.arange(10)
    xs, ys = subsample(x, y, 4, seed=5)
    assert ys.tolist() == sorted(ys.tolist()) and torch.equal(xs, x[ys])
    assert subsample(x, y, None)[0] is x


# --------------------------------------------------------------------------- safety


def test_hostile_cifar_batch_is_refused_without_running_its_payload(tmp_path):
    folder = tmp_path / "cifar"
    write_cifar10(folder)
    marker = tmp_path / "PWNED"
    hostile_cifar_batch(folder / "data_batch_3", marker)
    with pytest.raises(DataError, match="refusing to load") as info:
        load_data(f"cifar10:{folder}")
    assert not marker.exists()
    assert "data_batch_3" in str(info.value)
    # the payload is real: an ordinary unpickler does create the marker
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert marker.exists()


def test_hostile_tensor_file_is_refused_without_running_its_payload(tmp_path):
    marker = tmp_path / "PWNED"
    path = hostile_torch_file(
        tmp_path / "d.pt", marker, {k: torch.from_numpy(v) for k, v in tensor_arrays().items()}
    )
    with pytest.raises(DataError, match="refused to load") as info:
        load_data(f"tensors:{path}")
    assert not marker.exists()
    assert "\n" not in str(info.value) and "weights_only" not in str(info.value)


def test_restricted_unpickle_allows_plain_numpy_data():
    obj = {
        b"a": np.arange(3, dtype=np.int16),
        b"b": [1, 2.5, "s", b"x", None, True],
        b"c": np.float64(2.0),
    }
    out = restricted_unpickle(numpy_pickle(obj))
    np.testing.assert_array_equal(out[b"a"], obj[b"a"])
    assert out[b"b"] == obj[b"b"] and out[b"c"] == 2.0


# --------------------------------------------------------------------------- error paths


def _mnist_variant(tmp_path: Path, how: str) -> str:
    arrays = write_mnist(tmp_path)
    target = tmp_path / MNIST_NAMES["x_train"]
    raw = idx_bytes(arrays["x_train"])
    if how == "missing file":
        target.unlink()
    elif how == "bad magic":
        target.write_bytes(b"\x08\x03" + raw[2:])
    elif how == "wrong size":
        target.write_bytes(raw[:-5])
    elif how == "truncated header":
        target.write_bytes(raw[:9])
    elif how == "unknown idx type":
        target.write_bytes(raw[:2] + b"\x42" + raw[3:])
    elif how == "corrupt gzip":
        target.unlink()
        target.with_name(target.name + ".gz").write_bytes(gzip.compress(raw)[:40])
    elif how == "labels do not match images":
        write_idx(tmp_path / MNIST_NAMES["y_train"], arrays["y_train"][:-1])
    elif how == "images not 3-D":
        target.write_bytes(idx_bytes(arrays["x_train"].reshape(24, -1)))
    return f"mnist:{tmp_path}"


MNIST_ERRORS = [
    ("missing file", "missing train images"),
    ("bad magic", "bad magic number"),
    ("wrong size", "expected 18816 data bytes for shape [24, 28, 28], found 18811"),
    ("truncated header", "truncated IDX header"),
    ("unknown idx type", "unknown IDX data type 0x42"),
    ("corrupt gzip", "corrupt gzip file"),
    ("labels do not match images", "x and y lengths differ"),
    ("images not 3-D", "images must be 3-D"),
]


@pytest.mark.parametrize(("how", "message"), MNIST_ERRORS, ids=[c[0] for c in MNIST_ERRORS])
def test_mnist_errors(tmp_path, how, message):
    spec = _mnist_variant(tmp_path, how)
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def _cifar_variant(tmp_path: Path, how: str) -> str:
    write_cifar10(tmp_path)
    target = tmp_path / "data_batch_2"
    raw = target.read_bytes()
    if how == "missing batch":
        target.unlink()
    elif how == "empty file":
        target.write_bytes(b"")
    elif how == "truncated file":
        target.write_bytes(raw[: len(raw) // 2])
    elif how == "not a pickle":
        target.write_text("data,labels\n1,2\n")
    elif how == "foreign pickle":
        target.write_bytes(pickle.dumps({b"data": {1, 2}, b"labels": [0]}, protocol=2))
    elif how == "not a dict":
        target.write_bytes(numpy_pickle([1, 2, 3]))
    elif how == "no labels":
        target.write_bytes(numpy_pickle({b"data": np.zeros((2, 3072), np.uint8)}))
    elif how == "wrong row size":
        target.write_bytes(numpy_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    elif how == "data not pixels":
        target.write_bytes(numpy_pickle({b"data": "abc", b"labels": [0]}))
    elif how == "label out of range":
        target.write_bytes(numpy_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}))
    return f"cifar10:{tmp_path}"


CIFAR_ERRORS = [
    ("missing batch", "missing data_batch_2"),
    ("empty file", "not a readable CIFAR pickle"),
    ("truncated file", "not a readable CIFAR pickle"),
    ("not a pickle", "data_batch_2"),
    ("foreign pickle", "builtin__.set: only numpy arrays and plain data are allowed"),
    ("not a dict", "expected a dict, found list"),
    ("no labels", "missing 'data' or 'labels'"),
    ("wrong row size", "expected data of shape (N, 3072) and N labels, found [2, 100] and 2"),
    ("data not pixels", "'data' must be uint8 pixels"),
    ("label out of range", "label 10 is out of range for 10 classes"),
]


@pytest.mark.parametrize(("how", "message"), CIFAR_ERRORS, ids=[c[0] for c in CIFAR_ERRORS])
def test_cifar_errors(tmp_path, how, message):
    spec = _cifar_variant(tmp_path, how)
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def _tensors_variant(tmp_path: Path, how: str) -> str:
    npz, pt = tmp_path / "d.npz", tmp_path / "d.pt"
    arrays = tensor_arrays()
    if how == "missing file":
        return f"tensors:{tmp_path / 'nope.npz'}"
    if how == "folder instead of file":
        (tmp_path / "dir.npz").mkdir()
        return f"tensors:{tmp_path / 'dir.npz'}"
    if how == "wrong suffix":
        (tmp_path / "d.csv").write_text("1,2\n")
        return f"tensors:{tmp_path / 'd.csv'}"
    if how == "no file named":
        return "tensors:"
    if how == "npz missing arrays":
        np.savez(npz, x_train=arrays["x_train"], y_train=arrays["y_train"])
    elif how == "npz with pickled objects":
        np.savez(npz, **{**arrays, "x_train": np.array([{"a": 1}] * 20, dtype=object)})
    elif how == "empty npz":
        npz.write_bytes(b"")
    elif how == "truncated npz":
        write_npz(npz)
        npz.write_bytes(npz.read_bytes()[:200])
    elif how == "x y lengths differ":
        write_npz(npz, y_train=arrays["y_train"][:-2])
    elif how == "train test shapes differ":
        write_npz(npz, x_test=np.zeros((8, 2, 4, 5), np.float32))
    elif how == "fractional labels":
        write_npz(npz, y_train=np.full(20, 0.5))
    elif how == "negative labels":
        write_npz(npz, y_test=-np.ones(8, np.int64))
    elif how == "strings":
        write_npz(npz, x_train=np.array(["a"] * 20))
    elif how == "one-dimensional x":
        write_npz(npz, x_train=np.zeros(20, np.float32), x_test=np.zeros(8, np.float32))
    elif how == "empty train split":
        write_npz(npz, x_train=np.zeros((0, 2, 4, 4), np.float32), y_train=np.zeros(0, np.int64))
    if "npz" in how or how in (
        "x y lengths differ",
        "train test shapes differ",
        "fractional labels",
        "negative labels",
        "strings",
        "one-dimensional x",
        "empty train split",
    ):
        return f"tensors:{npz}"
    if how == "pt not a dict":
        torch.save([torch.zeros(2)], pt)
    elif how == "pt missing tensors":
        torch.save({"x_train": torch.zeros(2, 1)}, pt)
    elif how == "empty pt":
        pt.write_bytes(b"")
    elif how == "truncated pt":
        write_pt(pt)
        pt.write_bytes(pt.read_bytes()[:300])
    elif how == "pt pickled object":
        torch.save(
            {**{k: torch.from_numpy(v) for k, v in arrays.items()}, "meta": np.float64(1.0)}, pt
        )
    return f"tensors:{pt}"


TENSOR_ERRORS = [
    ("missing file", "no such file"),
    ("folder instead of file", "no such file"),
    ("wrong suffix", "must end in .npz or .pt"),
    ("no file named", "needs a file"),
    ("npz missing arrays", "missing arrays x_test, y_test"),
    ("npz with pickled objects", "holds pickled objects"),
    ("empty npz", "not a readable .npz file"),
    ("truncated npz", "not a readable .npz file"),
    ("x y lengths differ", "x and y lengths differ (train 20 vs 18, test 8 vs 8)"),
    ("train test shapes differ", "different shapes [2, 4, 4] and [2, 4, 5]"),
    ("fractional labels", "y_train must hold integer class labels"),
    ("negative labels", "class labels must be >= 0, found -1"),
    ("strings", "x_train is not a numeric array"),
    ("one-dimensional x", "one sample per row"),
    ("empty train split", "training split is empty"),
    ("pt not a dict", "expected a dict with x_train"),
    ("pt missing tensors", "missing tensors y_train, x_test, y_test"),
    ("empty pt", "is empty"),
    ("truncated pt", "d.pt"),
    ("pt pickled object", "refused to load"),
]


@pytest.mark.parametrize(("how", "message"), TENSOR_ERRORS, ids=[c[0] for c in TENSOR_ERRORS])
def test_tensor_file_errors(tmp_path, how, message):
    spec = _tensors_variant(tmp_path, how)
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def _folder_variant(tmp_path: Path, how: str) -> str:
    from PIL import Image

    if how == "missing folder":
        return f"folder:{tmp_path / 'nope'}"
    if how == "file instead of folder":
        (tmp_path / "f.png").write_bytes(b"x")
        return f"folder:{tmp_path / 'f.png'}"
    if how == "no class folders":
        (tmp_path / "a.png").write_bytes(b"x")
    elif how == "one image":
        write_image_folder(tmp_path, classes=("only",), per_class=1)
    elif how == "mixed sizes":
        write_image_folder(tmp_path)
        Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "dog" / "big.png")
    elif how == "unreadable image":
        write_image_folder(tmp_path)
        (tmp_path / "eel" / "broken.png").write_bytes(b"not a png")
    elif how == "test class not in train":
        write_image_folder(tmp_path, layout="split")
        (tmp_path / "train" / "eel").rename(tmp_path / "eel_moved")
    elif how == "empty train classes":
        (tmp_path / "train").mkdir()
        (tmp_path / "test").mkdir()
    return f"folder:{tmp_path}"


FOLDER_ERRORS = [
    ("missing folder", "no such folder"),
    ("file instead of folder", "no such folder"),
    ("no class folders", "has no class sub-folders"),
    ("one image", "found 1 images"),
    ("mixed sizes", "big.png is 7x9, others are 6x6"),
    ("unreadable image", "cannot read image"),
    ("test class not in train", "has classes not in"),
    ("empty train classes", "train has no class sub-folders"),
]


@pytest.mark.parametrize(("how", "message"), FOLDER_ERRORS, ids=[c[0] for c in FOLDER_ERRORS])
def test_image_folder_errors(tmp_path, how, message):
    spec = _folder_variant(tmp_path, how)
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


SPEC_ERRORS = [
    ("imagenet:/data", "unknown data source 'imagenet'"),
    ("Digits", "unknown data source 'Digits'"),
    ("digits:extra", "takes no argument"),
    ("mnist", "needs a folder"),
    ("cifar10:", "needs a folder"),
    ("mnist:/no/such/folder", "no such folder: /no/such/folder"),
    ("synthetic:train", "bad option 'train'"),
    ("synthetic:size=3", "bad option 'size=3'"),
    ("synthetic:train=abc", "bad value for train: 'abc'"),
    ("synthetic:shape=3x", "bad value for shape: '3x'"),
    ("synthetic:shape=0x4", "shape=0x4 is invalid"),
    ("synthetic:classes=1", "classes=1 is invalid"),
    ("synthetic:train=0", "train=0 is invalid"),
    ("synthetic:noise=-1", "noise=-1.0 is invalid"),
    ("synthetic:train=5,", "bad option ''"),
]


@pytest.mark.parametrize(("spec", "message"), SPEC_ERRORS, ids=[c[0] for c in SPEC_ERRORS])
def test_spec_errors(spec, message):
    with pytest.raises(DataError) as info:
        load_data(spec)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, SharpscopeError) and isinstance(info.value, ValueError)
