"""A small causal Transformer language model (its loss: :func:`sequence_cross_entropy`).

:class:`GPT` is a decoder-only Transformer (Radford et al. 2019, "Language Models
are Unsupervised Multitask Learners"): token and learned position embeddings,
``depth`` pre-norm blocks (LayerNorm -> causal multi-head self-attention ->
residual; LayerNorm -> GELU MLP -> residual), a final LayerNorm and a head tied to
the token embedding (``logits = h @ E^T``, no separate head parameter).

Attention is written out in plain PyTorch (q/k/v projections, scaled scores, a
boolean mask applied with ``masked_fill`` of the dtype's most negative finite
number, softmax, output projection) rather than a fused kernel, so that
:mod:`torch.func` can trace it: forward-over-reverse Hessian-vector products
(``jvp`` of ``grad``) work, and so does double backward. With an ``attention_mask``
a padded key is hidden from every other query, but each query always sees itself,
so no row of scores is fully masked (no NaN); a padding position's output is
meaningless and its target should be ``ignore_index``. Masked scores get a finite
fill, which softmax turns into exact zeros.

The zoo factory is :func:`gpt`, ``gpt(input_shape=(context,), num_classes=vocab, **kwargs)``.

Example:
    >>> net = gpt((16,), 256, width=32, depth=1, heads=2)
    >>> x = torch.randint(0, 256, (3, 16))
    >>> logits = net(x)
    >>> logits.shape
    torch.Size([3, 16, 256])
    >>> loss = sequence_cross_entropy(logits, torch.randint(0, 256, (3, 16)))
    >>> 4.0 < float(loss) < 7.0  # about log(256) = 5.55 at initialisation
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DataError, ModelSpecError
from ..losses import perplexity, sequence_cross_entropy

__all__ = ["GPT", "Block", "CausalSelfAttention", "gpt", "sequence_cross_entropy", "perplexity"]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask and an optional key-padding mask."""

    def __init__(self, width: int, heads: int, context: int) -> None:
        super().__init__()
        if width % heads:
            raise ModelSpecError(f"gpt: width {width} must be a multiple of heads {heads}")
        self.heads = int(heads)
        self.head_dim = width // heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        causal = torch.ones(context, context, dtype=torch.bool).tril()
        self.register_buffer("causal", causal, persistent=False)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = h.shape
        H, D = self.heads, self.head_dim
        q = self.q(h).view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = self.k(h).view(B, T, H, D).transpose(1, 2)
        v = self.v(h).view(B, T, H, D).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))  # (B, H, T, T)
        allowed = self.causal[:T, :T]
        if key_mask is not None:
            # a query always sees itself, so no row is empty (a padding query attends to
            # itself and earlier real tokens; real queries are unaffected)
            eye = torch.eye(T, dtype=torch.bool, device=h.device)
            allowed = allowed & (key_mask[:, None, None, :] | eye)  # (B, 1, T, T)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        attn = torch.softmax(scores, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(B, T, C)
        return self.proj(out)


class Block(nn.Module):
    """One pre-norm Transformer block."""

    def __init__(self, width: int, heads: int, context: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, context)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, mlp_ratio * width)
        self.out = nn.Linear(mlp_ratio * width, width)

    def forward(self, h: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), key_mask)
        return h + self.out(F.gelu(self.fc(self.ln2(h))))


class GPT(nn.Module):
    """Causal Transformer language model: ``(B, T)`` token ids -> ``(B, T, vocab)`` logits.

    Args:
        vocab: number of token ids (and of outputs: the head is tied to the embedding).
        context: the longest sequence (learned positions).
        width: embedding size; depth: number of blocks; heads: attention heads
            (``width`` must be a multiple); mlp_ratio: MLP hidden size / width.

    Initialisation as GPT-2: normal(0, 0.02) weights, zero biases, residual output
    projections scaled by ``1/sqrt(2 depth)``; LayerNorms start at the identity.
    """

    def __init__(
        self,
        vocab: int,
        context: int,
        *,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: int = 4,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("vocab", vocab, 2),
            ("context", context, 1),
            ("width", width, 1),
            ("depth", depth, 1),
            ("heads", heads, 1),
            ("mlp_ratio", mlp_ratio, 1),
        ):
            if int(value) != value or int(value) < low:
                raise ModelSpecError(
                    f"gpt: {name}={value} is invalid; it must be an integer >= {low}"
                )
        self.vocab, self.context = int(vocab), int(context)
        self.tok = nn.Embedding(self.vocab, int(width))
        self.pos = nn.Embedding(self.context, int(width))
        self.blocks = nn.ModuleList(
            Block(int(width), int(heads), self.context, int(mlp_ratio)) for _ in range(int(depth))
        )
        self.ln_f = nn.LayerNorm(int(width))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif p.ndim == 2:
                    std = 0.02
                    if name.endswith(("attn.proj.weight", "out.weight")):
                        std /= math.sqrt(2 * int(depth))
                    p.normal_(0.0, std)

    def forward(
        self,
        input_ids: torch.Tensor | Mapping[str, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, T, vocab)``.

        ``input_ids`` is a ``(B, T)`` (or ``(T,)``) integer tensor, or a mapping with
        ``"input_ids"`` and optionally ``"attention_mask"``. ``attention_mask`` (B, T)
        holds 1 for real tokens and 0 for padding: padded positions are never
        attended to (as keys).
        """
        if isinstance(input_ids, Mapping):
            if "input_ids" not in input_ids:
                raise DataError(
                    f"gpt: a batch mapping needs 'input_ids' (has {', '.join(map(str, input_ids))})"
                )
            if attention_mask is None:
                attention_mask = input_ids.get("attention_mask")
            input_ids = input_ids["input_ids"]
        x = input_ids
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise DataError(f"gpt: inputs must be integer token ids, got {x.dtype}")
        squeeze = x.ndim == 1
        if squeeze:
            x = x.unsqueeze(0)
        if x.ndim != 2:
            raise DataError(f"gpt: inputs must have shape (batch, tokens), got {list(x.shape)}")
        T = x.shape[1]
        if T > self.context:
            raise DataError(f"gpt: {T} tokens exceed the model's context of {self.context}")
        key_mask = None
        if attention_mask is not None:
            if squeeze and attention_mask.ndim == 1:
                attention_mask = attention_mask.unsqueeze(0)
            if tuple(attention_mask.shape) != tuple(x.shape):
                raise DataError(
                    f"gpt: attention_mask has shape {list(attention_mask.shape)}, "
                    f"the inputs {list(x.shape)}"
                )
            key_mask = attention_mask != 0
        h = self.tok(x) + self.pos.weight[:T]
        for block in self.blocks:
            h = block(h, key_mask)
        logits = F.linear(self.ln_f(h), self.tok.weight)
        return logits.squeeze(0) if squeeze else logits


def gpt(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    width: int = 64,
    depth: int = 2,
    heads: int = 4,
    context: int | None = None,
    vocab: int | None = None,
    mlp_ratio: int = 4,
) -> GPT:
    """Zoo factory: a :class:`GPT` for token windows of shape ``input_shape = (context,)``.

    ``num_classes`` is the vocabulary (256 for the byte-level text sources).
    ``context`` defaults to the window length and may be larger; ``vocab``, if
    given, must equal ``num_classes`` (the tied head has one output per token id).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1:
        raise ModelSpecError(
            f"model 'gpt' needs token windows of shape (context,) but the data has shape {list(shape)}"
        )
    ctx = shape[0] if context is None else int(context)
    if ctx < shape[0]:
        raise ModelSpecError(f"gpt: context={ctx} is shorter than the data's windows ({shape[0]})")
    if vocab is not None and int(vocab) != int(num_classes):
        raise ModelSpecError(f"gpt: vocab={vocab} differs from the data's {num_classes} token ids")
    return GPT(int(num_classes), ctx, width=width, depth=depth, heads=heads, mlp_ratio=mlp_ratio)
