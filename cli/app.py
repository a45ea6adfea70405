"""The ``sharpscope`` Typer application: every command registers itself here."""

from __future__ import annotations

from typing import Annotated

import typer

from sharpscope._version import __version__

from . import compare, hessian, info, landscape, plane, train

app = typer.Typer(
    name="sharpscope",
    help="Did this training really find a flatter minimum? Train with SGD/SAM/ASAM/XSAM and "
    "probe the minima: Hessian spectra, loss landscapes, XSAM planes, sharpness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

COMMAND_MODULES = [info, landscape, hessian, train, plane, compare]


def _version_callback(value: bool) -> None:
    if value:
        import torch

        typer.echo(f"sharpscope {__version__} (torch {torch.__version__})")
        raise typer.Exit()


@app.callback()
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
) -> None:
    """sharpscope command-line interface."""


for _module in COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
