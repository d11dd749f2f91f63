"""Option values parsed by their declared type, strictly, whatever their source.

Flags arrive as strings, JSON and YAML files as strings, numbers, booleans and lists: one function,
:func:`parse_option`, turns any of them into the type an option declares, with the rules of the command
line (transformers' ``string_to_bool`` for booleans, ``int()`` and ``float()`` for numbers), and refuses
everything else with the option's name. So ``"false"`` is false, never true (a non-empty string is truthy in
Python); ``max_train_steps: 2.5`` is refused, not truncated; YAML's ``1e-3``, a string to PyYAML, becomes the
float it means; NaN and infinities are refused for every float option.

The arguments dataclasses of ``aha train`` and ``aha evaluate`` declare their options with :func:`option`,
:func:`required_option` and :func:`repeated_option`: the field's default and its ``--help`` text, as
``HfArgumentParser`` reads them.
"""

from __future__ import annotations

import math
import types
import typing
from argparse import ArgumentTypeError
from dataclasses import field
from typing import Any, Callable, Literal, Union

from transformers.hf_argparser import string_to_bool


def option(help: str, default: Any = None, **metadata) -> Any:
    """A field of an arguments dataclass: its ``--help`` text and its default (None unless given: the option is
    unset), with any other ``HfArgumentParser`` keyword in ``metadata``."""
    return field(default=default, metadata={"help": help, **metadata})


def required_option(help: str) -> Any:
    """A field of an arguments dataclass that has no default: the flag must be given."""
    return field(metadata={"help": help})


def repeated_option(help: str, metavar: str) -> Any:
    """A field of an arguments dataclass given once per value (``--flag A --flag B``): a list, empty by default."""
    return field(default_factory=list, metadata={"help": help, "action": "append", "metavar": metavar})


def parse_option(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as the type ``annotation`` declares (bool, int, float, str, a ``Literal``, ``list[...]``, and
    unions of these with None). Raises a ValueError naming ``name`` and the expected type."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        choices = [argument for argument in arguments if argument is not type(None)]
        errors = []
        for choice in choices:
            try:
                return parse_option(name, value, choice)
            except ValueError as error:
                errors.append(error)
        raise (
            errors[0]
            if len(errors) == 1
            else ValueError(f"{name} must be {' or '.join(_describe(choice) for choice in choices)}, got {value!r}")
        )
    if origin is Literal:
        if value in arguments and not isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be one of {list(arguments)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be a list, got {value!r}")
        element = arguments[0] if arguments else Any
        return [parse_option(f"{name}[{index}]", item, element) for index, item in enumerate(value)]
    if annotation is Any:
        return value
    if annotation is bool:
        return _parse_bool(name, value)
    if annotation is int:
        return _parse_int(name, value)
    if annotation is float:
        return _parse_float(name, value)
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{name} must be a string, got {value!r} ({type(value).__name__}; quote it in a YAML file)")
    if isinstance(value, annotation):
        return value
    raise ValueError(f"{name} must be {_describe(annotation)}, got {value!r}")


def _parse_string(value, parse: Callable, error: type[Exception]):
    """``parse(value.strip())`` when ``value`` is a string that ``parse`` accepts (it raises ``error`` on one it
    does not); None otherwise."""
    if isinstance(value, str):
        try:
            return parse(value.strip())
        except error:
            pass
    return None


def _parse_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    parsed = _parse_string(value, string_to_bool, ArgumentTypeError)
    if parsed is None:
        raise ValueError(f"{name} must be a boolean (true/false, yes/no, 1/0), got {value!r}")
    return parsed


def _parse_int(name: str, value) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    parsed = _parse_string(value, int, ValueError)
    if parsed is None:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return parsed


def _parse_float(name: str, value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = float(value)
    else:
        parsed = _parse_string(value, float, ValueError)
    if parsed is None or not math.isfinite(parsed):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return parsed


def _describe(annotation) -> str:
    if typing.get_origin(annotation) in (list, tuple):
        return "a list"
    if typing.get_origin(annotation) is Literal:
        return f"one of {list(typing.get_args(annotation))}"
    names = {bool: "a boolean", int: "an integer", float: "a finite number", str: "a string", dict: "a mapping"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))
