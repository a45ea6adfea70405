"""Error handling and helpers for every sharpscope command; the shared options live in
:mod:`._options` and are re-exported here."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from sharpscope.errors import SharpscopeError

from ._options import (  # noqa: F401 - the shared options, re-exported for the commands
    BackendOpt,
    BatchOnlyOpt,
    BatchSizeOpt,
    CheckDeterminismOpt,
    DataOpt,
    DeviceOpt,
    JsonOpt,
    LossOpt,
    ModelKwargsOpt,
    ModelOpt,
    ModeOpt,
    NormalizeOpt,
    ParamsOpt,
    ProbeSamplesOpt,
    QuietOpt,
    SamplesOpt,
    SeedOpt,
    parse_bytes,
)

F = TypeVar("F", bound=Callable[..., Any])


def _given_on_command_line(name: str) -> bool:
    """Whether the option ``name`` of the running command was typed (not a default)."""
    try:
        from click import get_current_context
    except ImportError:  # typer >= 0.2x vendors click
        try:
            from typer._click.globals import get_current_context
        except ImportError:
            return False
    ctx = get_current_context(silent=True)
    if ctx is None or name not in ctx.params:
        return False
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def problem_options(
    *,
    model: str | None,
    model_kwargs: str | None,
    data: str | None,
    loss: str | None = None,
    normalize: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of the checkpoint-level probes that say how to load the
    checkpoint: ``model``, ``model_kwargs`` (parsed JSON), ``data``, ``loss``,
    ``normalize``, and ``samples_notice`` (whether ``--samples`` was typed, so that a
    count above the split's size gets a one-line notice)."""
    return {
        "model": model,
        "model_kwargs": parse_json_dict(model_kwargs) or None,
        "data": data,
        "loss": loss,
        "normalize": normalize,
        "samples_notice": _given_on_command_line("samples"),
    }


# ----------------------------------------------------------------------------- errors
def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code``.

    In a distributed run the ranks other than 0 say which rank they are.
    """
    from sharpscope.runtime.distributed import current
    from sharpscope.runtime.sanitize import printable

    ctx = current()
    where = f" (rank {ctx.rank})" if ctx is not None and not ctx.is_main else ""
    # a message can quote a file's text: no terminal control sequence reaches the terminal
    typer.echo(f"error{where}: {' '.join(printable(message).split())}", err=True)
    raise typer.Exit(code)


_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.\d+\.[A-Za-z0-9_]+\.tmp$")


def user_path(filename: Any) -> str:
    """The path to show for ``filename``: an atomic writer's ``.NAME.PID.XXXX.tmp`` is
    shown as the ``NAME`` the user asked for, never as the temporary file."""
    text = os.fsdecode(filename) if isinstance(filename, (bytes, os.PathLike)) else str(filename)
    p = Path(text)
    m = _TMP_NAME.match(p.name)
    return str(p.with_name(m.group("name"))) if m else text


#: errno -> the cause in plain words (the user's path is added after a colon)
_ERRNO_REASON = {
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EISDIR: "expected a file, found a folder",
    errno.ENOTDIR: "not a folder (a part of the path is a file)",
    errno.EEXIST: "already exists",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EMFILE: "too many open files (raise 'ulimit -n')",
    errno.ENFILE: "too many open files on this system",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error (a failing disk or network file system?)",
    errno.ENOTEMPTY: "folder not empty",
    errno.EXDEV: "cannot move across file systems",
    errno.EFBIG: "file too large for this file system",
    errno.ETXTBSY: "file busy",
    errno.EBUSY: "device or resource busy",
}


def errno_reason(exc: OSError) -> str:
    """The cause of an ``OSError`` in plain words, without any path."""
    reason = _ERRNO_REASON.get(exc.errno) if exc.errno is not None else None
    if reason is None:
        reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
    return reason


def os_error_message(exc: OSError, path: Any = None) -> str:
    """One plain sentence for an ``OSError``: the cause by ``errno`` and the user's path."""
    where = path if path is not None else exc.filename
    shown = user_path(where) if where is not None else None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{errno_reason(exc)} while writing {shown}" if shown else errno_reason(exc)
    if shown is None:
        return f"system error: {errno_reason(exc)}"
    return f"{errno_reason(exc)}: {shown}"


def _file_in_traceback(exc: BaseException) -> str | None:
    """The innermost ``path``/``filename``/``file`` local of the failing frames, if any."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        for name in ("path", "filename", "file", "fname"):
            value = tb.tb_frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and str(value):
                found = user_path(value)
                break
        tb = tb.tb_next
    return found


_SHAPE_WORDS = (
    "shape",
    "size mismatch",
    "sizes of tensors",
    "must match the size",
    "mat1 and mat2",
    "expected input",
    "input channels",
    "channels, but got",
    "dimension",
    "out of bounds",
    "target",
)


def describe_error(exc: BaseException) -> str:
    """A plain sentence for an exception that is not a :class:`SharpscopeError`."""
    name = type(exc).__name__
    first = " ".join((str(exc).strip().splitlines() or [""])[0].split())
    if isinstance(exc, OSError):
        return os_error_message(exc)
    if isinstance(exc, MemoryError):
        return "out of memory: lower --batch-size or --samples, or use a smaller model"
    if "OutOfMemoryError" in name or "out of memory" in first.lower():
        return "out of GPU memory: lower --batch-size or --samples"
    if isinstance(exc, RecursionError):
        return (
            "the input is nested too deeply to process (maximum recursion depth exceeded); "
            "check the file or the model definition"
        )
    if isinstance(exc, UnicodeDecodeError):
        where = _file_in_traceback(exc)
        what = f"{where} is" if where else "a file that should be text is"
        return f"{what} not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
    if isinstance(exc, RuntimeError) and any(w in first.lower() for w in _SHAPE_WORDS):
        return f"the model cannot take this data: {first}"
    return (
        f"internal error in sharpscope ({name}: {first}); "
        "please report it with SHARPSCOPE_DEBUG=1 output"
    )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library exceptions into one-line messages and non-zero exits.

    Never "unexpected X": operating-system errors name their cause and the user's path,
    memory, recursion, text-decoding and shape errors get plain sentences, and anything
    else is an "internal error" to report. ``SHARPSCOPE_DEBUG=1`` re-raises everything
    that is not a :class:`SharpscopeError`, with its traceback.
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
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback unless asked
        if os.environ.get("SHARPSCOPE_DEBUG"):
            raise
        fail(describe_error(exc))


#: the root option ``--threads`` of this invocation (``None``: not given), set by the app
_THREADS: list[int | None] = [None]


def set_threads(value: int | None) -> None:
    """Validate and store the root ``--threads`` for the command (imports no torch)."""
    from sharpscope.runtime.threads import choose_threads

    _THREADS[0] = None
    if value is not None:
        with user_errors():
            _THREADS[0] = choose_threads(value)


def start_threads() -> int:
    """Set torch's thread count before a command's work; return it.

    ``--threads N`` is applied as given. Without it, the count is that of
    :func:`sharpscope.runtime.threads.choose_threads` (``OMP_NUM_THREADS``, else the CPUs this
    process may use: the affinity mask and the cgroup quota), never more than torch has
    already (an embedding program may have lowered it). On a terminal, a machine busier
    than its CPUs gets the one-line note of :func:`sharpscope.runtime.threads.load_average_note`.
    Ctrl-C here (torch is being imported) is the start-up interruption: nothing was done.
    """
    try:
        from sharpscope.runtime.threads import choose_threads, configure_threads, load_average_note

        requested = _THREADS[0]
        if requested is None:
            import torch

            requested = min(choose_threads(None), torch.get_num_threads())
        n = configure_threads(requested)
    except KeyboardInterrupt:
        from .app import INTERRUPTED_AT_START

        typer.echo(INTERRUPTED_AT_START, err=True)
        raise typer.Exit(130) from None
    note = load_average_note(n)
    if note is not None and sys.stderr.isatty():
        typer.echo(note, err=True)
    return n


def handles_errors(fn: F) -> F:
    """Decorator form of :func:`user_errors` for command functions; sets the threads first."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            start_threads()
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
    from sharpscope.runtime.distributed import is_main

    if path is None or not is_main():  # distributed runs: rank 0 reports
        return
    from sharpscope.runtime.files import atomic_write_json, to_jsonable

    if str(path) == "-":
        sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")
        return
    atomic_write_json(path, obj)


def _nearest_existing(folder: Path) -> Path:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _try_create_in(folder: Path, name: str) -> OSError | None:
    """Create and delete a temporary file in ``folder`` (named like the atomic writers'
    ``.NAME.PID.XXXX.tmp``): the only test of writability that root, read-only mounts
    and ``/proc`` cannot fool."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        return exc
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return None


def check_output_file(path: Path, option: str) -> None:
    """Fail before any work when ``path`` (a file an option names) cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise SharpscopeError(f"{option} {path} is a folder; give a file name")
    folder = _nearest_existing(path.parent if str(path.parent) else Path("."))
    if not folder.is_dir():
        raise SharpscopeError(f"cannot write {option} {path}: {folder} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise SharpscopeError(f"cannot write {option} {path}: permission denied")
    exc = _try_create_in(folder, path.name)
    if exc is not None:
        raise SharpscopeError(
            f"cannot write {option} {path}: cannot create files in {folder} ({errno_reason(exc)})"
        )


def check_output_folder(path: Path, option: str) -> None:
    """Fail before any work when ``path`` (a folder an option names) cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SharpscopeError(f"{option} {path} is a file; give a folder")
    folder = _nearest_existing(path)
    if not folder.is_dir():
        raise SharpscopeError(f"cannot write {option} {path}: {folder} is a file, not a folder")
    exc = _try_create_in(folder, "sharpscope-check")
    if exc is not None:
        raise SharpscopeError(
            f"cannot write {option} {path}: cannot create files in {folder} ({errno_reason(exc)})"
        )


def check_outputs(
    *,
    files: dict[str, Path | None] | None = None,
    folders: dict[str, Path | None] | None = None,
) -> None:
    """Check every output of a command before it starts any work.

    ``files`` and ``folders`` map an option name to the path the user gave (``None`` and
    ``-`` for standard output are skipped), e.g.
    ``check_outputs(files={"--json": json_out, "--plot": plot}, folders={"--out": out})``.
    Raises :class:`SharpscopeError` naming the option and the user's path: a folder where a
    file is expected (or the reverse), a parent that is a file, a place where nothing can
    be created (permissions, read-only file system, ``/proc``).
    """
    for option, path in (files or {}).items():
        if path is not None and str(path) != "-":
            check_output_file(Path(path), option)
    for option, path in (folders or {}).items():
        if path is not None:
            check_output_folder(Path(path), option)


def load_cli_problem(
    checkpoint: Path,
    *,
    model: str | None,
    model_kwargs: str | None,
    data: str | None,
    device: str = "auto",
    loss: str | None = None,
    normalize: str | None = None,
):
    """Load a :class:`sharpscope.Problem` from the common command-line options."""
    from sharpscope.problem import load_problem

    return load_problem(
        checkpoint,
        device=device,
        **problem_options(
            model=model, model_kwargs=model_kwargs, data=data, loss=loss, normalize=normalize
        ),
    )


def distributed_setup(device: str, quiet: bool) -> tuple[str, bool]:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` (else change nothing).

    Returns the device this rank uses (``cuda:LOCAL_RANK`` with GPUs) and ``quiet``,
    forced on the ranks other than 0 (only rank 0 prints and writes).
    """
    from sharpscope.runtime.distributed import init_distributed, world_size_from_env

    if world_size_from_env() <= 1:
        return device, quiet
    ctx = init_distributed(device=device)
    if ctx.backend == "nccl" and (str(device) == "auto" or str(device).startswith("cuda")):
        device = str(ctx.device)
    return device, quiet or not ctx.is_main
