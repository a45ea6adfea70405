"""Compatibility: ``sharpscope.text``, now :mod:`sharpscope.problem.data.text`."""

from __future__ import annotations

from .problem.data.text import (  # noqa: F401
    TEST_FILES,
    TEXT_DEFAULTS,
    TRAIN_FILES,
    VOCAB_SIZE,
    TextCorpus,
    file_corpus,
    load_text,
    load_text_source,
    load_textfile,
    load_textfile_source,
    parse_text_options,
    read_text_file,
    sample_windows,
    stdlib_corpus,
)

__all__ = [
    "VOCAB_SIZE",
    "TRAIN_FILES",
    "TEST_FILES",
    "TEXT_DEFAULTS",
    "TextCorpus",
    "stdlib_corpus",
    "file_corpus",
    "read_text_file",
    "sample_windows",
    "load_text",
    "load_textfile",
    "parse_text_options",
    "load_text_source",
    "load_textfile_source",
]
