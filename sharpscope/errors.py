"""Exceptions that carry a message meant for the user.

Every error a user can cause (a wrong path, an unknown model name, a malformed
range, a checkpoint that does not match the model) is raised as a
:class:`SharpscopeError` (a ``ValueError``) whose message is one line naming the
problem and the offending value. The CLI prints that line and exits non-zero.
"""

from __future__ import annotations


class SharpscopeError(ValueError):
    """A problem with the user's input, reported as one line without a traceback."""


class CheckpointError(SharpscopeError):
    """A checkpoint file is missing, unreadable, unsafe or does not match the model."""


class DataError(SharpscopeError):
    """A data source is missing, malformed or unknown."""


class ModelSpecError(SharpscopeError):
    """A model name, import path or keyword argument is not valid."""


class NonFiniteLossError(SharpscopeError):
    """The loss became NaN or infinite."""


class InterruptedRun(SharpscopeError):
    """A long job was interrupted; what was finished has been kept."""


class FolderLockedError(SharpscopeError):
    """Another sharpscope command is writing into the same output folder."""


class DiskFullError(SharpscopeError):
    """The disk filled up while a file was being written; the old file (if any) is intact."""
