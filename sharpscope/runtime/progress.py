"""Progress bars on stderr, silent on the ranks other than 0 of a distributed run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .distributed import is_main

T = TypeVar("T")

__all__ = ["progress"]


def progress(
    iterable: Iterable[T],
    *,
    desc: str = "",
    total: int | None = None,
    quiet: bool = False,
    leave: bool = False,
    unit: str = "it",
) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm progress bar on stderr unless ``quiet``.

    Silent on the ranks other than 0 of a distributed run.
    """
    if quiet or not is_main():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=leave, unit=unit, dynamic_ncols=True)
