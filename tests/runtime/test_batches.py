"""Any batch structure: (x, y), (mapping, y) and mappings, against hand-written calls."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sharpscope.errors import SharpscopeError
from sharpscope.runtime.batches import (
    batch_loss_fn,
    batch_target,
    batch_weight,
    call_model,
    loss_on_batch,
    model_arguments,
    move_batch,
    total_weight,
)


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 3)
        self.head = nn.Linear(3, 7)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        h = self.emb(input_ids)
        if attention_mask is not None:
            h = h * attention_mask[..., None]
        return self.head(h)


class KwargsNet(DictNet):
    def forward(self, **batch):  # type: ignore[override]
        return super().forward(batch["input_ids"], batch.get("attention_mask"))


def _mapping(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 7, (4, 5), generator=g)
    mask = torch.ones(4, 5, dtype=torch.long)
    mask[0, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.roll(ids, -1, 1)}


def _seq_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def test_pair_batches_call_model_with_x() -> None:
    net = nn.Linear(2, 3)
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 2, 1, 0])
    assert model_arguments(net, (x, y)) == ((x,), {})
    assert torch.equal(loss_on_batch(net, F.cross_entropy, (x, y)), F.cross_entropy(net(x), y))
    assert batch_weight((x, y)) == 5.0


def test_mapping_inputs_with_targets_call_model_with_keywords() -> None:
    net = DictNet()
    b = _mapping()
    inputs = {k: b[k] for k in ("input_ids", "attention_mask")}
    expected = _seq_ce(net(**inputs), b["labels"])
    assert torch.equal(loss_on_batch(net, _seq_ce, (inputs, b["labels"])), expected)
    assert batch_weight((inputs, b["labels"])) == 4.0


@pytest.mark.parametrize("net_cls", [DictNet, KwargsNet], ids=["signature", "kwargs"])
def test_mapping_batches_pass_the_keys_forward_takes(net_cls: type) -> None:
    net = net_cls()
    b = _mapping()
    args, kwargs = model_arguments(net, b)
    if net_cls is DictNet:
        assert set(kwargs) == {"input_ids", "attention_mask"}  # labels are not forward's
    else:
        assert set(kwargs) == set(b)
    expected = _seq_ce(
        net(input_ids=b["input_ids"], attention_mask=b["attention_mask"]), b["labels"]
    )
    assert torch.allclose(loss_on_batch(net, _seq_ce, b), expected, rtol=0, atol=0)
    assert batch_target(b) is b["labels"]


def test_functional_call_with_params_equals_swapped_weights() -> None:
    net = DictNet()
    b = _mapping(1)
    params = {n: p.detach() + 0.1 for n, p in net.named_parameters()}
    got = call_model(net, b, params)
    twin = DictNet()
    twin.load_state_dict(params)
    assert torch.allclose(got, twin(b["input_ids"], b["attention_mask"]))
    # the caller's model is unchanged
    assert not torch.allclose(net.head.weight, params["head.weight"])


def test_loss_of_the_whole_batch_and_its_weight() -> None:
    def masked_ce(output: torch.Tensor, batch: dict) -> torch.Tensor:
        mask = batch["attention_mask"].bool()
        return F.cross_entropy(output[mask], batch["labels"][mask])

    masked_ce.weight = lambda batch: batch["attention_mask"].sum()  # type: ignore[attr-defined]
    loss = batch_loss_fn(masked_ce, name="masked_ce")
    net = DictNet()
    b = _mapping(2)
    mask = b["attention_mask"].bool()
    out = net(b["input_ids"], b["attention_mask"])
    assert torch.equal(loss_on_batch(net, loss, b), F.cross_entropy(out[mask], b["labels"][mask]))
    assert batch_weight(b, loss) == float(mask.sum()) == 18.0
    assert total_weight([b, b], loss) == 36.0


def test_a_loss_that_is_not_a_scalar_is_one_line() -> None:
    loss = batch_loss_fn(lambda out, batch: out.sum(-1), name="bad")
    with pytest.raises(SharpscopeError, match=r"loss bad must return a scalar tensor .*\[4, 5\]"):
        loss_on_batch(DictNet(), loss, _mapping())


def test_a_batch_the_model_cannot_take_names_keys_and_signature() -> None:
    net = DictNet()
    with pytest.raises(SharpscopeError) as err:
        call_model(net, {"tokens": torch.zeros(2, 3, dtype=torch.long)})
    msg = str(err.value)
    assert "tokens: tensor[2, 3]" in msg and "input_ids" in msg and "\n" not in msg


def test_a_mapping_without_labels_needs_a_batch_loss() -> None:
    b = _mapping()
    del b["labels"]
    with pytest.raises(SharpscopeError, match="labels"):
        loss_on_batch(DictNet(), _seq_ce, b)


def test_move_batch_casts_only_floating_tensors() -> None:
    b = {**_mapping(), "pixel": torch.randn(4, 2)}
    moved = move_batch(((b, b["labels"])), "cpu", torch.float64)
    assert moved[0]["pixel"].dtype == torch.float64
    assert moved[0]["input_ids"].dtype == torch.long and moved[1].dtype == torch.long
