"""The ``aha`` command (also ``python -m aha``, ``accelerate launch -m aha train ...``): one argparse
subcommand per entry point.

Each subcommand is one entry of :data:`SUBCOMMANDS`: a module exposing ``build_parser()`` (the parser of
its flags and of ``aha <command> --help``) and ``main(args)``, imported only when its subcommand runs. The
modules keep torch out of ``build_parser()``, so ``--help``, ``--version`` and argument errors answer at once.

A user's mistake (a file that is not an image, an explainer that cannot be found, a bad option: the
library's ``ValueError`` and ``OSError`` with messages naming what was expected) ends the command with one
line, ``aha COMMAND: error: ...``, and exit status 1; ``--debug`` (anywhere on the line) shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__


#: subcommand -> (module exposing build_parser() and main(args), one line for ``aha --help``)
SUBCOMMANDS = {
    "train": ("aha.training", "train an explainer for a frozen image classifier"),
    "explain": ("aha.explain", "explain image files with a trained explainer: overlays, maps, curves"),
    "evaluate": ("aha.evaluation", "score methods on a dataset split: the exact metrics, on one or many processes"),
    "demo": ("aha.demo", "the offline end-to-end benchmark: data, classifier, explainer, every method, report"),
}

#: optional dependency -> the extra that installs it (the core package imports none of them)
EXTRAS = {"accelerate": "train", "datasets": "train", "skimage": "demo"}

#: the exceptions that report a user's mistake: printed as one line unless --debug
USER_ERRORS = (ValueError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aha", description="AHA: learned importance rankings for Hugging Face image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"aha-explain {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="Show the full traceback of an error (also accepted after the command)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in SUBCOMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)  # its flags and --help belong to its module
    return parser


def one_line(error: BaseException) -> str:
    """The error's message on one line (transformers' loading errors span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> None:
    """Run ``aha COMMAND ...``: the command's module parses the rest of the arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    namespace, rest = build_parser().parse_known_args([arg for arg in argv if arg != "--debug"])
    command = namespace.command
    try:
        module = importlib.import_module(SUBCOMMANDS[command][0])
        args = module.build_parser().parse_args(rest)  # before module.main, which may import torch
        module.main(args)
    except ModuleNotFoundError as error:  # accelerate / datasets / scikit-image live in extras
        if error.name not in EXTRAS:
            raise
        raise SystemExit(
            f"aha {command} needs {error.name}, which is not installed: "
            f"pip install -e '.[{EXTRAS[error.name]}]' in a clone of aha-explain (it is not on PyPI yet)"
        ) from error
    except USER_ERRORS as error:
        if debug:
            raise
        raise SystemExit(f"aha {command}: error: {one_line(error)} (--debug shows the traceback)") from error
