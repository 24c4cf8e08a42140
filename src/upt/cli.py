"""The ``upt`` command line: each subcommand is a thin call into the library.

Subcommands live in :mod:`upt.commands`, one module each, with ``register(subparsers)`` adding
its parser and setting ``func``. Errors a person can fix (:class:`upt.errors.UptError`) are printed
as one line, without a traceback, and the exit code is 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from upt import __version__
from upt.errors import UptError

COMMANDS = ("train", "eval", "predict", "list", "info", "data", "sweep", "report", "analyze", "pretrain_toy", "cache",
            "export", "push")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upt", description="Prompt tuning for CLIP: UPT and the baselines it is judged against."
    )
    parser.add_argument("--version", action="version", version=f"upt {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"upt.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our own messages at INFO; other libraries (open_clip logs every step of model creation) at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("upt").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except UptError as exc:
        print(f"upt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("upt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `upt list backbones | head`: the reader has gone; nothing left to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
