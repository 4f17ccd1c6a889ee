"""Allowed-roots path safety: the dashboard only ever reads below the folders it was started with.

A browser user can type or upload anything, so every path that comes from the page is checked
here before it is opened.  Three escapes are closed: ``..`` components (rejected outright, even
when they would land back inside a root, because they are never needed and make audits harder),
symlinks pointing outside (checked on the fully resolved path), and absolute paths elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from adaptclip_med.errors import PathNotAllowedError
from adaptclip_med.utils.redact import describe_path

#: The dashboard output's folder of scored studies (``studies/<key>`` or ``studies/<key>--<method>``).
STUDIES_DIR = "studies"


class AllowedRoots:
    """A set of folders below which reading is permitted."""

    def __init__(self, roots: Iterable[Path | str]) -> None:
        self.roots: tuple[Path, ...] = tuple(dict.fromkeys(Path(r).expanduser().resolve() for r in roots))

    def with_root(self, root: Path | str) -> "AllowedRoots":
        """A copy that also allows ``root`` (a session's private upload folder)."""
        return AllowedRoots((*self.roots, Path(root)))

    def check(self, path: Path | str) -> Path:
        """The resolved path if it lies under a root; otherwise :class:`PathNotAllowedError`.

        Relative paths are taken relative to the first root in which they exist (else the first
        root), which is what a user typing ``study_01`` into the page means."""
        raw = Path(str(path)).expanduser()
        if ".." in raw.parts:
            raise PathNotAllowedError(f"{describe_path(raw.name or raw)}: paths containing '..' are not allowed")
        if not self.roots:
            raise PathNotAllowedError(f"{describe_path(raw.name)}: no data roots are configured; start the dashboard with --data-root DIR")
        if raw.is_absolute():
            candidate = raw
        else:
            candidate = next((root / raw for root in self.roots if (root / raw).exists()), self.roots[0] / raw)
        resolved = candidate.resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            reason = "is a symlink leading outside" if _has_symlink(candidate) else "is outside"
            raise PathNotAllowedError(f"{describe_path(raw.name)}: {reason} the configured data roots")
        return resolved

    def contains(self, path: Path | str) -> bool:
        try:
            self.check(path)
        except PathNotAllowedError:
            return False
        return True

    def walk_files(self, limit: int) -> Iterator[Path]:
        """Every regular file under the roots (hidden entries skipped, symlinks out ignored), at
        most ``limit`` of them so a huge archive cannot hang the page."""
        count = 0
        for root in self.roots:
            for folder, dirs, files in os.walk(root, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    path = Path(folder) / name
                    if path.is_symlink() and not self.contains(path):
                        continue
                    yield path
                    count += 1
                    if count >= limit:
                        return


def _has_symlink(path: Path) -> bool:
    current = path
    while current != current.parent:
        if current.is_symlink():
            return True
        current = current.parent
    return False
