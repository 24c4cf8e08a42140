"""User-facing errors.

Every problem a person can fix (a missing folder, a corrupt image, a checkpoint for another
backbone, an unknown name) is raised as :class:`UptError` with one sentence that says what to do.
The command line prints the message alone, without a traceback, and exits non-zero.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UptError(Exception):
    """An error caused by input a person can correct; its message is shown as is."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UptError:
    """Build the error for an unknown registry name, suggesting the closest known one."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listing = f"Known: {', '.join(known)}." if len(known) <= 20 else f"`upt list {kind}s` shows all {len(known)}."
    return UptError(f"Unknown {kind} '{name}'.{hint} {listing}")
