"""Renamed public keywords and methods keep working for a while, with a ``FutureWarning`` naming the new name.

(transformers' ``deprecate_kwarg`` is not used: its removal schedule is counted in transformers' own versions.)
"""

from __future__ import annotations

import functools
import warnings


def renamed_keyword(old: str, new: str):
    """Decorator: a call with the keyword ``old`` runs as one with ``new``, after a ``FutureWarning``."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{function.__qualname__}() got both {old}= and its new name {new}=")
                warn_renamed(f"{function.__qualname__}({old}=...)", f"{new}=", stacklevel=3)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """The ``FutureWarning`` of a renamed name: ``old`` still works and will be removed; use ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed in a future aha-explain release: use {new} instead",
                  FutureWarning, stacklevel=stacklevel)
