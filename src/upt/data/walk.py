"""Walking dataset folders without leaving them: symbolic links are followed only inside the
dataset and to folders not listed yet, and listed entries may not point outside their folder.

A loop (``ln -s . self``, ``up -> ..``) or a link out of the dataset would count images twice, put
test images into training or give images another class's label; a split file listing ``/etc/passwd``
or ``../..`` would make training open any file on the machine. Skipped links are named in a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from upt.data.base import is_image
from upt.errors import UptError

logger = logging.getLogger(__name__)


def _inside(real: str, real_root: str) -> bool:
    """Whether the real path ``real`` is ``real_root`` or below it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _warn_skipped(root: str, skipped: list[str]) -> None:
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        logger.warning("Skipped %d link(s) in %s, so that no folder is listed twice and nothing outside it is "
                       "read: %s.", len(skipped), root, shown)


def _claim(real: str, real_root: str, seen: set[str], skipped: list[str], shown: str) -> bool:
    """Mark the folder with real path ``real`` visited, or record in ``skipped`` why it is not."""
    if not _inside(real, real_root):
        skipped.append(f"{shown} (leads to {real}, outside)")
    elif real in seen:
        skipped.append(f"{shown} (a folder listed already)")
    else:
        seen.add(real)
        return True
    return False


def list_images(folder: str | Path, root: str | Path | None = None, seen: set[str] | None = None) -> list[str]:
    """Image files under ``folder`` (recursively), as sorted paths relative to it.

    Symbolic links are followed only where they stay inside ``root`` and reach a folder not listed
    yet: a loop (``ln -s . self``, ``up -> ..``) or a link out of the dataset would count images
    twice, put test images into training or give images another class's label. Linked image files
    inside ``root`` are kept. Skipped links are named in one warning.

    Args:
        folder: The folder to list.
        root: The dataset folder no link may leave (default: ``folder``).
        seen: Real paths of folders already listed or claimed by other classes, updated in place;
            one set shared by all class folders of a dataset lists every folder once.
    """
    folder = str(folder)
    root = str(root if root is not None else folder)
    real_root = os.path.realpath(root)
    seen = set() if seen is None else seen
    seen.update((real_root, os.path.realpath(folder)))
    found: list[str] = []
    skipped: list[str] = []
    stack = [("", os.path.realpath(folder))]
    while stack:
        rel, real_dir = stack.pop()
        try:
            with os.scandir(os.path.join(folder, rel)) as it:
                entries = sorted(it, key=lambda e: (e.is_symlink(), e.name))  # real folders claim first
        except OSError as exc:
            logger.warning("Cannot list folder %s (%s); its images are left out.", os.path.join(folder, rel),
                           exc.strerror or exc)
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            name = os.path.join(rel, e.name) if rel else e.name
            link = e.is_symlink()
            real = os.path.realpath(e.path) if link else os.path.join(real_dir, e.name)
            if e.is_dir():
                if _claim(real, real_root, seen, skipped, os.path.relpath(e.path, root)):
                    stack.append((name, real))
            elif is_image(e.name):
                if link and not _inside(real, real_root):
                    skipped.append(f"{os.path.relpath(e.path, root)} (leads to {real}, outside)")
                else:
                    found.append(name)
    _warn_skipped(root, skipped)
    return sorted(found)


def claim_folders(paths: Sequence[str], root: str | Path, seen: set[str]) -> list[str]:
    """Keep the folders of ``paths`` that lie inside ``root`` and are distinct, in input order.

    A linked folder that leads outside ``root``, to ``root`` itself, or to a folder that another
    entry (a real folder before a link) or ``seen`` holds already is skipped with a warning. The real
    paths of the kept folders are added to ``seen``.
    """
    real_root = os.path.realpath(root)
    seen.add(real_root)
    reals = {p: os.path.realpath(p) for p in paths}
    skipped: list[str] = []
    kept = set()
    for p in sorted(paths, key=os.path.islink):  # real folders claim first; sorted() is stable
        if _claim(reals[p], real_root, seen, skipped, os.path.relpath(p, root)):
            kept.add(p)
    _warn_skipped(str(root), skipped)
    return [p for p in paths if p in kept]


def list_subdirs(folder: str | Path, root: str | Path | None = None, seen: set[str] | None = None) -> list[str]:
    """Visible sub-folder names of ``folder``, sorted (Python's case-sensitive order, as CoOp).

    Linked sub-folders leading outside ``root`` (default: ``folder``) or to a folder listed already
    are skipped with a warning (see :func:`claim_folders`); ``seen`` collects the real paths kept.
    """
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    paths = claim_folders([os.path.join(folder, n) for n in names], root if root is not None else folder,
                          set() if seen is None else seen)
    return [os.path.basename(p) for p in paths]


def entry_path(folder: str, entry: str, source: str, allow_absolute: bool = False) -> str:
    """The path of a listed image ``entry`` under ``folder``, refusing one that leaves ``folder``.

    The check is on the path as written (``..`` and absolute paths), so a split file cannot make
    training open any file on the machine; links inside the dataset are the dataset's business.

    Args:
        folder: The folder entries are relative to.
        entry: The path as listed.
        source: The list, for the error (e.g. ``"Split file /data/dtd/split.json"``).
        allow_absolute: Accept an absolute path that lies inside ``folder``.

    Raises:
        UptError: ``entry`` is absolute (unless allowed) or lies outside ``folder``.
    """
    rule = "entries must be paths relative to it" + (" or absolute paths inside it" if allow_absolute else "")
    if os.path.isabs(entry) and not allow_absolute:
        raise UptError(f"{source} lists {entry!r}, an absolute path; entries must be paths relative to the "
                       f"dataset folder {folder}.")
    if not _inside(os.path.normpath(os.path.join(folder, entry)), os.path.normpath(folder)):
        raise UptError(f"{source} lists {entry!r}, which is outside the dataset folder {folder}; {rule}.")
    return os.path.join(folder, os.path.normpath(entry))
