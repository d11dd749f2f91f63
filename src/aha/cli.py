"""The ``aha`` command: ``aha train ...`` (also ``python -m aha train ...``, ``accelerate launch -m aha train ...``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("train",):
        print("usage: aha train [--help] ...   (train an AHA explainer; see `aha train --help`)", file=sys.stderr)
        raise SystemExit(2)
    from .training import build_parser, train

    train(build_parser().parse_args(argv[1:]))
