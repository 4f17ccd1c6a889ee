"""User-facing error types.

Every failure a user can cause (missing weights, a corrupt file, a checkpoint for another backbone)
is raised as an :class:`AdaptClipError` whose message is ONE line that says what is wrong and what
to do.  The CLI prints that line and exits non-zero; only ``--debug`` shows a traceback.  Messages
must never contain patient identifiers (names, IDs, birth dates, UIDs): use
:func:`adaptclip_med.utils.redact.describe_path` when naming a file.
"""

from __future__ import annotations


class AdaptClipError(Exception):
    """Base class for errors whose message is meant for the end user (one line)."""

    exit_code: int = 2


class MissingWeightsError(AdaptClipError):
    """Weights (backbone or adapters) are not available locally and cannot be downloaded."""

    exit_code = 3


class CheckpointMismatchError(AdaptClipError):
    """A checkpoint does not fit the chosen backbone (dimension, prompt length, layers)."""


class ChecksumError(AdaptClipError):
    """A file claiming to be a known release does not have the published sha256."""


class InputError(AdaptClipError):
    """An input file or folder cannot be used (unreadable, wrong shape, non-image, NaNs...)."""


class PathNotAllowedError(AdaptClipError):
    """A path resolves outside the configured allowed roots."""
