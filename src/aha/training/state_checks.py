"""Values read back from a training checkpoint, checked against the live run's before anything is restored:
:func:`checked_like` (the same structure and JSON types) and :func:`checked_values` (the same values, but those
allowed to vary, each within its range). A message names the file and the field."""

from __future__ import annotations

from ..validation import check_number


def checked_values(saved, fresh, where: str, varying: dict):
    """``saved`` (checked like ``fresh`` by :func:`checked_like`) when every value equals ``fresh``'s but those
    under the keys of ``varying`` (at any depth), which must pass ``check_number(**varying[key])`` (each element
    of a list; None: any value of ``fresh``'s type). Raises a ValueError naming the field otherwise."""
    saved = checked_like(saved, fresh, where)

    def check(value, fresh_value, path: str) -> None:
        if isinstance(fresh_value, dict):
            for key in fresh_value:
                if key in varying:
                    rule = varying[key]
                    values = value[key] if isinstance(value[key], (list, tuple)) else [value[key]]
                    for index, element in enumerate(values if rule is not None else ()):
                        suffix = f"[{index}]" if isinstance(value[key], (list, tuple)) else ""
                        check_number(f"{path}.{key}{suffix}", element, **rule)
                else:
                    check(value[key], fresh_value[key], f"{path}.{key}")
        elif isinstance(fresh_value, (list, tuple)) and any(isinstance(v, dict) for v in fresh_value):
            for index, (element, fresh_element) in enumerate(zip(value, fresh_value)):
                check(element, fresh_element, f"{path}[{index}]")
        elif value != fresh_value:
            raise ValueError(
                f"{path} is {value!r:.100}, this run's is {fresh_value!r:.100}: the checkpoint was written with other "
                "optimiser or schedule options (or edited); resume with the options of the run that wrote it"
            )

    check(saved, fresh, where)
    return saved


def checked_like(saved, fresh, where: str):
    """``saved`` when it has the structure of ``fresh`` (same keys, same JSON types), else a ValueError."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or saved.keys() != fresh.keys():
            raise ValueError(f"{where} should have the keys {sorted(fresh)}, got {saved!r:.200}")
        return {key: checked_like(saved[key], fresh[key], f"{where}.{key}") for key in fresh}
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            raise ValueError(f"{where} should be a list of {len(fresh)} values, got {saved!r:.200}")
        return type(fresh)(checked_like(s, f, f"{where}[{i}]") for i, (s, f) in enumerate(zip(saved, fresh)))
    number = (int, float)
    if isinstance(fresh, bool) or fresh is None or isinstance(fresh, str):
        ok = type(saved) is type(fresh)
    else:
        ok = isinstance(saved, number) and not isinstance(saved, bool) and isinstance(fresh, number)
    if not ok:
        raise ValueError(f"{where} should be like {fresh!r}, got {saved!r:.200}")
    return saved
