"""The ``sharpscope`` Typer application: every command registers itself here.

This module imports only the standard library at the top: the application (Typer, the
command modules, and through them torch) is built on first use, inside :func:`main`, so
that Ctrl-C while the CLI starts up is one line and exit status 130, not a traceback.
``from sharpscope_cli.app import app`` still works (module ``__getattr__``).
"""

import sys
from typing import Annotated, Any, Optional

__all__ = ["main", "usage_error_line"]  # and `app`, built on first use (__getattr__)

INTERRUPTED_AT_START = "interrupted while starting up: nothing was done"

_APP: Any = None


def usage_error_line(exc: Any, args: Any = None) -> str:
    """One line for a Click usage error: the cause, a suggestion, and where the help is.

    ``no such option --epoch (did you mean --epochs?); see 'sharpscope train --help'``
    """
    import difflib

    click = _click_module()

    ctx = exc.ctx
    param = getattr(exc, "param", None)

    def param_name(p: Any) -> str:
        if p is None:
            return ""
        if getattr(p, "param_type_name", "") == "argument":
            return str(p.name or "").upper()
        opts = [o for o in getattr(p, "opts", []) if o.startswith("--")] or list(
            getattr(p, "opts", [])
        )
        return opts[0] if opts else str(p.name or "")

    if isinstance(exc, click.exceptions.NoSuchOption):
        msg = f"no such option {exc.option_name}"
        if exc.possibilities:
            best = difflib.get_close_matches(exc.option_name, exc.possibilities, n=1, cutoff=0)
            msg += f" (did you mean {best[0]}?)"
    elif isinstance(exc, click.exceptions.MissingParameter):
        kind = exc.param_type or getattr(param, "param_type_name", None) or "parameter"
        msg = f"missing {kind} {param_name(param)}".rstrip()
    elif isinstance(exc, click.exceptions.BadParameter):
        hint = param_name(param) or (
            exc.param_hint if isinstance(exc.param_hint, str) else " / ".join(exc.param_hint or [])
        )
        text = str(exc.message)
        text = text[:1].lower() + text[1:]
        msg = f"invalid value for {hint}: {text}" if hint else text
    else:
        msg = exc.format_message()
        msg = msg.replace(". Did you mean ", " (did you mean ")
        if "(did you mean " in msg and not msg.endswith(")"):
            msg += ")"
        msg = msg[:1].lower() + msg[1:]
    msg = " ".join(str(msg).split()).rstrip(".")
    where = ctx.command_path if ctx is not None else "sharpscope"
    if ctx is None or ctx.parent is None:
        # errors raised while parsing a command's options may carry the group's context
        app = _APP
        names = set(getattr(getattr(ctx, "command", None), "commands", {}) or {})
        if not names and app is not None:
            names = {c.name for c in app.registered_commands if c.name}
        words = [str(a) for a in (sys.argv[1:] if args is None else args)]
        named = next((w for w in words if w in names), None)
        if named:
            where = f"sharpscope {named}"
    return f"{msg}; see '{where} --help'"


def _click_module() -> Any:
    """Click as Typer uses it: vendored as ``typer._click`` in recent Typer, else ``click``."""
    try:
        from typer import _click as click
    except ImportError:  # older Typer depends on Click itself
        import click  # type: ignore[no-redef]
    return click


def _abort_classes(click: Any) -> tuple[type[BaseException], ...]:
    """Click's ``Abort`` (Ctrl-C / EOF at a prompt) wherever this Typer keeps it."""
    import typer

    found = [
        getattr(click.exceptions, "Abort", None),
        getattr(getattr(typer, "exceptions", None), "Abort", None),
    ]
    return tuple({c for c in found if isinstance(c, type)}) or (KeyboardInterrupt,)


def _make_group_class() -> type:
    from typer.core import TyperGroup

    click = _click_module()
    aborts = _abort_classes(click)

    class SharpscopeGroup(TyperGroup):
        """A Typer group whose usage errors are one ``error:`` line, exit status 2.

        Runs Click in non-standalone mode and formats what it raises: no "Usage:" block,
        no box, and the same behaviour under ``CliRunner`` as from the console script.
        """

        def main(  # type: ignore[override]
            self,
            args: Any = None,
            prog_name: str | None = None,
            complete_var: str | None = None,
            standalone_mode: bool = True,
            **extra: Any,
        ) -> Any:
            try:
                rv = super().main(
                    args=args,
                    prog_name=prog_name or "sharpscope",
                    complete_var=complete_var,
                    standalone_mode=False,
                    **extra,
                )
                code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
            except click.exceptions.NoArgsIsHelpError as exc:
                click.echo(exc.ctx.get_help(), err=True)
                code = 2
            except click.exceptions.UsageError as exc:
                click.echo(f"error: {usage_error_line(exc, args)}", err=True)
                code = 2
            except click.exceptions.ClickException as exc:
                line = " ".join(exc.format_message().split())
                click.echo(f"error: {line[:1].lower() + line[1:]}", err=True)
                code = exc.exit_code
            except aborts:
                click.echo("error: aborted", err=True)
                code = 1
            except KeyboardInterrupt:
                click.echo(INTERRUPTED_AT_START, err=True)
                code = 130
            if standalone_mode:
                sys.exit(code)
            return code

    return SharpscopeGroup


def _version_callback(value: bool) -> None:
    """``--version``: this package's version and torch's, read without importing torch."""
    if value:
        from importlib import metadata

        import typer

        from sharpscope._version import __version__

        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = "not installed"
        typer.echo(f"sharpscope {__version__} (torch {torch_version})")
        raise typer.Exit()


def _build_app() -> Any:
    """Create the Typer application and register every command (imports torch)."""
    global _APP
    if _APP is not None:
        return _APP
    import typer

    from . import compare, hessian, info, landscape, plane, train

    application = typer.Typer(
        name="sharpscope",
        help="Did this training really find a flatter minimum? Train with SGD/SAM/ASAM/XSAM "
        "and probe the minima: Hessian spectra, loss landscapes, XSAM planes, sharpness.",
        cls=_make_group_class(),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @application.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                callback=_version_callback,
                is_eager=True,
                help="Print the version and exit.",
            ),
        ] = False,
        threads: Annotated[
            Optional[int],  # noqa: UP045 - Typer reads the annotation at run time
            typer.Option(
                "--threads",
                help="CPU threads for torch (default: OMP_NUM_THREADS, else the CPUs this "
                "process may use: affinity mask and cgroup quota).",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """sharpscope command-line interface."""
        from ._common import set_threads

        set_threads(threads)

    for module in (info, landscape, hessian, train, plane, compare):
        module.register(application)
    _APP = application
    return application


def __getattr__(name: str) -> Any:
    if name == "app":
        return _build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exits with 0, 1 (an error), 2 (usage) or 130 (Ctrl-C)."""
    try:
        application = _build_app()
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED_AT_START + "\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a broken installation is one line too
        import os

        if os.environ.get("SHARPSCOPE_DEBUG"):
            raise
        first = " ".join((str(exc).strip().splitlines() or [""])[0].split())
        sys.stderr.write(
            f"error: sharpscope cannot start ({type(exc).__name__}: {first}); check the "
            "installation of torch and sharpscope, or set SHARPSCOPE_DEBUG=1 for the traceback\n"
        )
        sys.exit(1)
    try:
        application(args=argv, prog_name="sharpscope")
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED_AT_START + "\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
