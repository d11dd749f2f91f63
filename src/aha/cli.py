"""The ``aha`` command (also ``python -m aha``, ``accelerate launch -m aha train ...``): one argparse
subcommand per entry point.

Each subcommand is one entry of :data:`SUBCOMMANDS`: a module exposing ``build_parser()`` (the parser of
its flags and of ``aha <command> --help``) and ``main(args)``, imported only when its subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys


#: subcommand -> (module exposing build_parser() and main(args), one line for ``aha --help``)
SUBCOMMANDS = {
    "train": ("aha.training", "train an explainer for a frozen image classifier"),
    "explain": ("aha.explain", "explain image files with a trained explainer: overlays, maps, curves"),
    "evaluate": ("aha.evaluation", "score methods on a dataset split: the exact metrics, on one or many processes"),
    "demo": ("aha.demo", "the offline end-to-end benchmark: data, classifier, explainer, every method, report"),
}

#: optional dependency -> the extra that installs it (the core package imports none of them)
EXTRAS = {"accelerate": "train", "datasets": "train", "skimage": "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha", description="AHA: learned importance rankings for Hugging Face image classifiers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in SUBCOMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)  # its flags and --help belong to its module
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run ``aha COMMAND ...``: the command's module parses the rest of the arguments."""
    namespace, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        module = importlib.import_module(SUBCOMMANDS[namespace.command][0])
        module.main(module.build_parser().parse_args(rest))
    except ModuleNotFoundError as error:  # accelerate / datasets / scikit-image live in extras
        if error.name not in EXTRAS:
            raise
        raise SystemExit(
            f"aha {namespace.command} needs {error.name}, which is not installed: "
            f"pip install 'aha-explain[{EXTRAS[error.name]}]'"
        ) from error
