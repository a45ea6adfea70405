"""The Hessian operator against dense float64 Hessians (sharpscope.reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sharpscope._func import layer_groups, select_parameters
from sharpscope.errors import SharpscopeError
from sharpscope.hessian import HessianOperator, clear_backend_cache
from sharpscope.hessian.operator import time_backends

from .cases import CASES, exact, loss_fn, make

GRID = [(name, mode) for name in CASES for mode in ("eval", "train")]


PRODUCT_CASES = [(n, m, "forward") for n, m in GRID] + [
    ("mlp", "eval", "double"),
    ("mlp-bn", "train", "double"),
    ("cnn", "train", "double"),
    ("cnn-bn", "eval", "double"),
]


@pytest.mark.parametrize(
    ("name", "mode", "backend"), PRODUCT_CASES, ids=[f"{b}-{n}-{m}" for n, m, b in PRODUCT_CASES]
)
def test_products_match_dense_full_data(name, mode, backend):
    model, batches = make(name)
    H = exact(name, mode)
    op = HessianOperator(model, loss_fn, batches, mode=mode, backend=backend, block_size=3)
    g = torch.Generator().manual_seed(1)
    V = torch.randn(op.dim, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op.matmat(V), H @ V, atol=1e-10, rtol=0)  # blocked (3 + 2)
    torch.testing.assert_close(op @ V[:, 0], H @ V[:, 0], atol=1e-10, rtol=0)  # single
    assert op.hvp_count == 6
    assert op.num_samples == sum(len(y) for _, y in batches)


@pytest.mark.parametrize(
    ("name", "mode"), [("mlp-bn", "train"), ("cnn", "eval")], ids=["mlp-bn-train", "cnn-eval"]
)
@pytest.mark.parametrize("backend", ["forward", "double"])
def test_single_batch_and_dataloader(name, mode, backend):
    model, batches = make(name)
    H1 = exact(name, mode, batch_only=True)
    op = HessianOperator(model, loss_fn, batches[0], mode=mode, backend=backend)  # one (x, y) pair
    v = torch.randn(op.dim, dtype=torch.float64)
    torch.testing.assert_close(op @ v, H1 @ v, atol=1e-10, rtol=0)
    torch.testing.assert_close(op @ v, H1 @ v, atol=1e-10, rtol=0)  # cached graph reused
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10)
    op = HessianOperator(model, loss_fn, loader, mode=mode, backend=backend)
    sizes = [10, 10, 4]
    split = [(x[i : i + s], y[i : i + s]) for i, s in zip((0, 10, 20), sizes, strict=True)]
    from sharpscope.reference import dense_hessian

    torch.testing.assert_close(
        op @ v, dense_hessian(model, loss_fn, split, mode=mode) @ v, atol=1e-10, rtol=0
    )


@pytest.mark.parametrize("name", ["mlp-bn", "cnn-bn"])
def test_per_layer_blocks_are_dense_diagonal_blocks(name):
    model, batches = make(name)
    H = exact(name, "train")
    names = select_parameters(model)
    offsets, pos = {}, 0
    for n, p in model.named_parameters():
        offsets[n] = (pos, pos + p.numel())
        pos += p.numel()
    for layer, group in layer_groups(names).items():
        op = HessianOperator(model, loss_fn, batches, params=group, mode="train", backend="forward")
        idx = torch.cat([torch.arange(*offsets[n]) for n in group])
        block = H[idx][:, idx]
        V = torch.randn(op.dim, 2, dtype=torch.float64)
        torch.testing.assert_close(
            op.matmat(V), block @ V, atol=1e-10, rtol=0, msg=f"layer {layer}"
        )


def test_regex_parameter_subset():
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, params=r"^3\.", backend="double")
    assert op.names == ["3.weight", "3.bias"]
    H = exact("mlp", "eval", params=r"^3\.")
    torch.testing.assert_close(
        op.matmat(torch.eye(op.dim, dtype=torch.float64)), H, atol=1e-10, rtol=0
    )


def test_dict_products_and_scipy_eigsh():
    from scipy.sparse.linalg import eigsh

    model, batches = make("cnn-bn")
    H = exact("cnn-bn", "eval")
    op = HessianOperator(model, loss_fn, batches, backend="forward")
    v = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    hv = op.hvp(v)
    assert list(hv) == op.names and hv["0.weight"].shape == (4, 1, 3, 3)
    torch.testing.assert_close(op.from_dict(hv), H @ op.from_dict(v), atol=1e-10, rtol=0)
    lin = op.to_scipy()
    vals = eigsh(lin, k=3, which="LA", tol=1e-12, return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(vals), torch.linalg.eigvalsh(H)[-3:].numpy(), rtol=1e-8)


def test_float32_model_float64_scipy_io():
    model, batches = make("mlp")
    model = model.float()
    op = HessianOperator(model, loss_fn, [(x.float(), y) for x, y in batches], backend="forward")
    out = op.to_scipy().matvec(np.ones(op.dim))
    assert out.dtype == np.float64 and out.shape == (op.dim,)


def test_auto_backend_is_timed_and_cached():
    clear_backend_cache()
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="auto")
    assert op.backend in ("forward", "double") and set(op.timings) >= {"double", "forward"}
    again = HessianOperator(model, loss_fn, batches, backend="auto")
    assert again.backend == op.backend and again.timings == {}  # from the cache, not timed again
    times = time_backends(op)
    assert all(t > 0 for t in times.values())


class _Shuffled:
    """Re-iterable data that reshuffles at every pass (like random augmentation)."""

    def __init__(self, x, y):
        self.x, self.y, self.calls = x, y, 0

    def __iter__(self):
        self.calls += 1
        g = torch.Generator().manual_seed(self.calls)
        idx = torch.randperm(len(self.y), generator=g)[:10]
        yield self.x[idx], self.y[idx]


def test_determinism_check_names_dropout():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    x, y = torch.randn(20, 6, dtype=torch.float64), torch.randint(0, 3, (20,))
    op = HessianOperator(model, loss_fn, (x, y), mode="train", backend="double")
    with pytest.raises(SharpscopeError, match="differ by .*Dropout active in train mode"):
        op.check_determinism()
    HessianOperator(
        model, loss_fn, (x, y), mode="eval", backend="forward"
    ).check_determinism()  # eval: fine
    fwd = HessianOperator(model, loss_fn, (x, y), mode="train", backend="forward", block_size=2)
    with pytest.raises(SharpscopeError, match="Dropout"):
        fwd.matmat(torch.randn(fwd.dim, 2, dtype=torch.float64))


def test_determinism_check_names_changing_batches():
    model, batches = make("mlp")
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    op = HessianOperator(model, loss_fn, _Shuffled(x, y), backend="double")
    with pytest.raises(SharpscopeError, match="batches change between passes"):
        op.check_determinism()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mode="test"), "mode must be"),
        (dict(backend="magic"), "unknown backend 'magic'"),
        (dict(block_size=0), "block size"),
        (dict(params="nomatch_xyz"), "matches no parameter"),
        (dict(params="(["), "invalid parameter pattern"),
        (dict(params=["nope"]), "unknown parameter names: nope"),
    ],
    ids=["mode", "backend", "block", "pattern", "bad-regex", "names"],
)
def test_argument_errors(kwargs, message):
    model, batches = make("mlp")
    with pytest.raises(SharpscopeError, match=message):
        HessianOperator(model, loss_fn, batches, **{"backend": "double", **kwargs})


def test_empty_data_and_bad_vectors():
    model, _ = make("mlp")
    with pytest.raises(SharpscopeError, match="empty"):
        HessianOperator(model, loss_fn, [], backend="double")
    op = HessianOperator(model, loss_fn, make("mlp")[1], backend="double")
    with pytest.raises(SharpscopeError, match="expected vectors of shape"):
        op.matmat(torch.zeros(3, 2, dtype=torch.float64))


def test_auto_backend_choice_is_counted_and_cached_across_processes(tmp_path, monkeypatch):
    import json

    from sharpscope.hessian import hessian_eigenvalues
    from sharpscope.hessian.operator import backend_cache_path

    monkeypatch.setenv("SHARPSCOPE_CACHE_DIR", str(tmp_path))
    clear_backend_cache()
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="auto")
    spent = op.setup_products
    assert spent >= 4 and op.hvp_count == spent  # warm-up + timed products of both backends
    saved = json.loads(backend_cache_path().read_text())
    assert saved["version"] == 1 and len(saved["entries"]) == 1
    # the first result on the operator reports them; the next does not pay again
    res = hessian_eigenvalues(model, loss_fn, batches, k=1, backend="auto", check=False)
    assert res.hvp_count == res.lanczos_products  # in-process cache: nothing timed
    clear_backend_cache(disk=False)  # "another process": only the file remains
    again = HessianOperator(model, loss_fn, batches, backend="auto")
    assert again.timings == {} and again.setup_products == 0 and again.backend == op.backend
    clear_backend_cache(disk=False)
    from sharpscope.hessian import lanczos

    fresh = HessianOperator(model, loss_fn, [(x, y) for x, y in batches], backend="auto")
    assert fresh.setup_products == 0
    # a result on an operator that timed reports the timing products
    clear_backend_cache()
    timed = HessianOperator(model, loss_fn, batches, backend="auto")
    r = lanczos(timed, k=1, check=False)
    assert r.hvp_count == r.lanczos_products + spent
    assert lanczos(timed, k=1, check=False).hvp_count == r.lanczos_products  # once only


@pytest.mark.parametrize(
    "content",
    [
        "not json {",
        "[1, 2]",
        '{"version": 99, "entries": {}}',
        '{"version": 1, "entries": "x"}',
        "BAD_ENTRY",
    ],
    ids=["garbage", "list", "version", "entries", "entry"],
)
def test_damaged_backend_cache_is_ignored(tmp_path, monkeypatch, content):
    import json

    from sharpscope.hessian.operator import backend_cache_path

    monkeypatch.setenv("SHARPSCOPE_CACHE_DIR", str(tmp_path))
    clear_backend_cache()
    model, batches = make("mlp")
    HessianOperator(model, loss_fn, batches, backend="auto")
    path = backend_cache_path()
    if content == "BAD_ENTRY":
        key = next(iter(json.loads(path.read_text())["entries"]))
        bad = {"backend": "os.system", "block_size": -3}
        content = json.dumps({"version": 1, "entries": {key: bad}})
    path.write_text(content)
    clear_backend_cache(disk=False)
    op = HessianOperator(model, loss_fn, batches, backend="auto")
    assert op.backend in ("forward", "double") and op.timings  # timed again, not trusted
    assert json.loads(path.read_text())["version"] == 1  # rewritten valid


def test_max_memory_lowers_the_vmap_block():
    model, batches = make("mlp")
    op = HessianOperator(model, loss_fn, batches, backend="forward", block_size=8)
    per = op.vector_bytes()
    assert per > 0 and op.vmap_block == 8  # ample memory on the test machine
    small = HessianOperator(
        model, loss_fn, batches, backend="forward", block_size=8, max_memory=3 * per
    )
    assert small.vmap_block == 3 and small.preferred_block == 3
    seen = []
    orig = small._forward_products

    def spy(x, y, rows):
        seen.append(rows.shape[0])
        return orig(x, y, rows)

    small._forward_products = spy
    V = torch.randn(small.dim, 8, dtype=torch.float64)
    torch.testing.assert_close(small.matmat(V), exact("mlp", "eval") @ V)
    assert max(seen) == 3
    tiny = HessianOperator(model, loss_fn, batches, backend="forward", block_size=8, max_memory=1)
    assert tiny.vmap_block == 1
    with pytest.raises(SharpscopeError, match="max_memory"):
        HessianOperator(model, loss_fn, batches, backend="forward", max_memory=-5)


@pytest.mark.parametrize("backend", ["forward", "double"])
def test_nonfinite_parameters_are_not_called_nondeterministic(backend):
    from sharpscope.errors import NonFiniteLossError

    model, batches = make("mlp")
    with torch.no_grad():
        model[1].weight[0, :2] = float("nan")
    op = HessianOperator(model, loss_fn, batches, backend=backend)
    with pytest.raises(NonFiniteLossError, match=r"not finite \(2 non-finite parameters") as exc:
        op.check_determinism()
    assert "deterministic" not in str(exc.value) and "differ" not in str(exc.value)


def test_nonfinite_loss_is_named():
    from sharpscope.errors import NonFiniteLossError

    model, batches = make("mlp")
    x, y = batches[0]
    x = x.clone()
    x[0, 0] = float("inf")
    op = HessianOperator(model, loss_fn, (x, y), backend="double")
    with pytest.raises(
        NonFiniteLossError, match=r"not finite \(0 non-finite .* 1 non-finite input"
    ):
        op.check_determinism()

    def nan_loss(out, target):  # a loss that is NaN for finite inputs and parameters
        return loss_fn(out, target) * torch.tensor(float("nan"), dtype=out.dtype)

    op = HessianOperator(model, nan_loss, batches, backend="double")
    with pytest.raises(NonFiniteLossError, match=r"not finite \(0 non-finite parameters; the loss"):
        op.check_determinism()
