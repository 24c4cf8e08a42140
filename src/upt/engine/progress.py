"""Progress of an epoch or an evaluation: a tqdm bar on a terminal, log lines everywhere else.

Under ``nohup``, SLURM or a pipe a bar is invisible, and a 50,000-image evaluation would be silent
for many minutes. There, a line is logged every ``every_s`` seconds (and at the end): images done,
images per second, the running loss and the time left, as open_clip's training logs do
(``UPT_PROGRESS_SECONDS`` changes the interval).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm import tqdm

log = logging.getLogger("upt.engine.progress")
EVERY_S = float(os.environ.get("UPT_PROGRESS_SECONDS", 30))  # seconds between progress lines off a terminal


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Counts images of one pass; ``update(n, loss=...)`` after each batch.

    Args:
        total: images in the pass.
        desc: what the pass is (``epoch 3/200``, ``eval``).
        terminal: show a bar (default: whether stderr is a terminal); otherwise log lines.
        every_s: seconds between log lines.
        enabled: False makes every call a no-op (ranks other than 0).
    """

    def __init__(self, total: int, desc: str, terminal: bool | None = None, every_s: float = EVERY_S,
                 enabled: bool = True):
        self.total, self.desc, self.every_s, self.enabled = total, desc, every_s, enabled
        self.done, self.loss = 0, None
        self.start = self.last = time.monotonic()
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar = tqdm(total=total, desc=desc, unit="img", leave=False) if enabled and terminal else None

    def update(self, n: int, loss: float | None = None) -> None:
        if not self.enabled:
            return
        self.done += n
        self.loss = loss if loss is not None else self.loss
        if self.bar is not None:
            self.bar.update(n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """``epoch 3/200: 1280/4000 images · 231.4 img/s · loss 1.2345 · ETA 11s``."""
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        speed = self.done / elapsed
        parts = [f"{self.desc}: {self.done}/{self.total} images", f"{speed:.1f} img/s"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if speed > 0 and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / speed)}")
        return " · ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
