"""The command-line options every sharpscope command shares (Typer ``Annotated`` aliases),
and the parsers of option values; error handling and helpers are in :mod:`._common`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from sharpscope.errors import SharpscopeError

# ----------------------------------------------------------------------------- options
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        help="Model name (mlp, cnn, resnet20/32/56, vgg11) or 'package.module:function'. "
        "Overrides the checkpoint's; required for a plain state dict.",
    ),
]
ModelKwargsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model-kwargs", help="Model keyword arguments as JSON, e.g. '{\"hidden\": [64, 64]}'."
    ),
]
DataOpt = Annotated[
    Optional[str],
    typer.Option(
        "--data",
        help="Data spec (digits, synthetic, mnist:DIR, cifar10:DIR, cifar100:DIR, tensors:FILE, "
        "folder:DIR, text, textfile:PATH) or 'package.module:factory[?key=value&...]' "
        "returning (train, test). Defaults to the checkpoint's; required for a plain state dict.",
    ),
]
LossOpt = Annotated[
    Optional[str],
    typer.Option(
        "--loss",
        help="Loss: cross_entropy, sequence_cross_entropy, mse, or 'package.module:fn' with "
        "fn(output, batch) -> mean loss. Defaults to the checkpoint's.",
    ),
]
NormalizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--normalize",
        help="Input normalisation: none (the data as stored), standard (per channel), "
        "MEAN,STD or per-channel M1,M2,../S1,S2,.. Default: a sharpscope checkpoint's own "
        "(its stored statistics), none for a plain state dict.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


def _json_callback(value: Path | None) -> Path | None:
    """Check ``--json FILE`` before the command starts: a folder, /proc or a read-only
    place is one ``error:`` line naming the user's path, not a failure after the work."""
    from ._common import check_outputs, user_errors  # _common imports this module

    with user_errors():
        check_outputs(files={"--json": value})
    return value


JsonOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--json",
        help="Write the numbers as JSON to this file ('-' for standard output).",
        callback=_json_callback,
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
SamplesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--samples", help="Use a seeded subset of this many training samples (default: all)."
    ),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", help="Samples per forward pass.")]
ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        help="Model mode while probing: eval or train "
        "(train: BatchNorm uses batch statistics, running stats frozen).",
    ),
]
# options of the probes that load a checkpoint's model and training data (eigen, trace, esd;
# other probe commands can adopt them): the probe data and the product settings
ProbeSamplesOpt = Annotated[
    int,
    typer.Option(
        "--samples",
        help="Seeded subset of this many training samples (0: the whole training split).",
    ),
]
BatchOnlyOpt = Annotated[
    bool, typer.Option("--batch-only", help="Use only one batch of --batch-size samples.")
]
ParamsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--params", help="Regular expression selecting parameters by name (default: all trainable)."
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="Hessian-vector products: auto (time both), forward (forward-over-reverse), double.",
    ),
]
CheckDeterminismOpt = Annotated[
    bool,
    typer.Option(
        "--check-determinism/--no-check-determinism",
        help="First check, with one extra product, that repeated Hessian-vector products of "
        "the same vector agree: catches Dropout in train mode, random augmentation and "
        "shuffled batches. --no-check-determinism skips it and trusts the data path.",
    ),
]


def parse_bytes(text: str | None, *, option: str = "--max-memory") -> int | str | None:
    """A byte count from the command line: ``auto``, ``none``, ``123456``, ``512M``, ``2G``.

    Suffixes K, M, G, T (optionally followed by ``B`` or ``iB``) are powers of 1024.
    Anything else, zero and negative counts are a one-line :class:`SharpscopeError`.
    """
    if text is None:
        return "auto"
    word = str(text).strip().lower()
    if word in ("auto", ""):
        return "auto"
    if word == "none":
        return None
    m = _BYTES.match(word)
    if m is None:
        raise SharpscopeError(
            f"{option} must be a number of bytes like 2G, 512M or 1000000 (or auto, none), "
            f"got {text!r}"
        )
    value = float(m.group(1)) * 1024 ** "bkmgt".index(m.group(2) or "b")
    if not value >= 1 or value > 2**62:
        raise SharpscopeError(f"{option} must be at least 1 byte, got {text!r}")
    return int(value)


_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$")
