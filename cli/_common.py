"""Shared options and error handling for every sharpscope command."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import typer

from sharpscope.errors import SharpscopeError
from sharpscope.utils import atomic_write_json, to_jsonable

F = TypeVar("F", bound=Callable[..., Any])

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
        "folder:DIR). Defaults to the checkpoint's; required for a plain state dict.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]
JsonOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--json", help="Write the numbers as JSON to this file ('-' for standard output)."
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


# ----------------------------------------------------------------------------- errors
def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code``.

    In a distributed run the ranks other than 0 say which rank they are.
    """
    from sharpscope.distributed import current

    ctx = current()
    where = f" (rank {ctx.rank})" if ctx is not None and not ctx.is_main else ""
    typer.echo(f"error{where}: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library exceptions into one-line messages and non-zero exits.

    ``SHARPSCOPE_DEBUG=1`` re-raises unexpected exceptions with their traceback.
    """
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: finished work has been kept; run the same command again to resume",
            err=True,
        )
        raise typer.Exit(130) from None
    except SharpscopeError as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(f"no such file: {exc.filename or exc}")
    except PermissionError as exc:
        fail(f"permission denied: {exc.filename or exc}")
    except IsADirectoryError as exc:
        fail(f"expected a file, found a folder: {exc.filename or exc}")
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if os.environ.get("SHARPSCOPE_DEBUG"):
            raise
        name = type(exc).__name__
        if "OutOfMemoryError" in name:
            fail("out of GPU memory: lower --batch-size or --samples")
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"unexpected {name}: {first} (set SHARPSCOPE_DEBUG=1 for the traceback)")


def handles_errors(fn: F) -> F:
    """Decorator form of :func:`user_errors` for command functions."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# ----------------------------------------------------------------------------- helpers
def parse_json_dict(text: str | None, *, option: str = "--model-kwargs") -> dict[str, Any]:
    """Parse a JSON object given on the command line; anything else is a one-line error."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SharpscopeError(f"{option} is not valid JSON: {exc.msg} in {text!r}") from exc
    if not isinstance(value, dict):
        raise SharpscopeError(
            f"{option} must be a JSON object like '{{\"width\": 2}}', got {text!r}"
        )
    return value


def emit_json(path: Path | None, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` (atomically), or to stdout when ``path`` is ``-``."""
    from sharpscope.distributed import is_main

    if path is None or not is_main():  # distributed runs: rank 0 reports
        return
    if str(path) == "-":
        sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
        return
    atomic_write_json(path, obj)


def load_cli_problem(
    checkpoint: Path,
    *,
    model: str | None,
    model_kwargs: str | None,
    data: str | None,
    device: str = "auto",
):
    """Load a :class:`sharpscope.Problem` from the common command-line options."""
    from sharpscope.problem import load_problem

    return load_problem(
        checkpoint,
        model=model,
        model_kwargs=parse_json_dict(model_kwargs) or None,
        data=data,
        device=device,
    )


def distributed_setup(device: str, quiet: bool) -> tuple[str, bool]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (else change nothing).

    Returns the device this rank uses (``cuda:LOCAL_RANK`` with GPUs) and ``quiet``,
    forced on the ranks other than 0 (only rank 0 prints and writes).
    """
    from sharpscope.distributed import init_distributed, world_size_from_env

    if world_size_from_env() <= 1:
        return device, quiet
    ctx = init_distributed(device=device)
    if ctx.backend == "nccl" and (str(device) == "auto" or str(device).startswith("cuda")):
        device = str(ctx.device)
    return device, quiet or not ctx.is_main
