"""The errors of :mod:`fungrad.checkpoint`: one family, so a caller can catch them all at once."""

from __future__ import annotations

__all__ = ["CheckpointError", "CheckpointNotFoundError"]


class CheckpointError(ValueError):
    """A checkpoint file is damaged, truncated, not a fungrad checkpoint, of an unknown format
    version, or does not match the template it is restored into; or a run folder cannot hold
    a checkpoint (see :func:`~fungrad.checkpoint.check_folder`).

    The message is one line that starts with the file or folder it is about.
    """


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist (both a ``CheckpointError`` and a ``FileNotFoundError``)."""
