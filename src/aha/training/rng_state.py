"""Every RNG state of a training process as JSON values, for an exact resume: the objective's generator,
Python's, NumPy's, torch's CPU one and each accelerator device's (:func:`rng_states`); checked on scratch
generators before anything global is touched (:func:`checked_rng_states`), then restored (:func:`set_rng_states`)."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..validation import check_number
from .state_checks import checked_like


def rng_states(device: torch.device, generator: torch.Generator | None = None) -> dict:
    """This process's RNG states as JSON values: ``generator``'s (the objective's), Python's, NumPy's, torch's
    CPU one and, on an accelerator with per-device generators (CUDA, XPU, ...), every device's."""
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    states = {
        "python": [version, list(internal), gauss_next],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
        "device": None,
        "objective": generator.get_state().tolist() if generator is not None else None,
    }
    module = getattr(torch, device.type, None)
    if device.type != "cpu" and hasattr(module, "get_rng_state_all"):
        states["device"] = {"type": device.type, "states": [s.tolist() for s in module.get_rng_state_all()]}
    return states


def checked_rng_states(states, device: torch.device, generator: torch.Generator | None, where: str) -> dict:
    """``states`` when :func:`set_rng_states` can restore them: shaped like this process's (:func:`rng_states`),
    bytes in [0, 255], and accepted by scratch generators of each kind (nothing global is touched)."""
    states = checked_like(states, rng_states(device, generator), where)

    def check_bytes(values, name):
        for index, value in enumerate(values):
            check_number(f"{where}: {name}[{index}]", value, integer=True, minimum=0, maximum=255)
        return torch.tensor(values, dtype=torch.uint8)

    _, _, position, has_gauss, cached = states["numpy"]
    check_number(f"{where}: numpy[2] (position)", position, integer=True, minimum=0, maximum=624)
    check_number(f"{where}: numpy[3] (has_gauss)", has_gauss, integer=True, minimum=0, maximum=1)
    check_number(f"{where}: numpy[4] (cached gaussian)", cached)
    try:
        version, internal, gauss_next = states["python"]
        random.Random().setstate((version, tuple(internal), gauss_next))
        name, keys, position, has_gauss, cached = states["numpy"]
        np.random.RandomState().set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{where}: the python or numpy RNG state cannot be restored ({error})") from error
    for name, values, scratch_device in (
        ("torch", states["torch"], "cpu"),
        ("objective", states["objective"], generator.device if generator else None),
    ):
        if values is not None:
            try:
                torch.Generator(scratch_device).set_state(check_bytes(values, name))
            except RuntimeError as error:
                raise ValueError(f"{where}: {name} is not an RNG state of this run ({error})") from error
    if states["device"] is not None:
        if states["device"]["type"] != device.type:
            raise ValueError(
                f"{where}: RNG states of {states['device']['type']} devices cannot be restored on {device.type}"
            )
        for index, values in enumerate(states["device"]["states"]):
            check_bytes(values, f"device.states[{index}]")
    return states


def set_rng_states(states: dict, device: torch.device, generator: torch.Generator | None = None) -> None:
    """Restore what :func:`rng_states` returned (``generator`` keeps its state when none was saved)."""
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))
    if generator is not None and states.get("objective") is not None:
        generator.set_state(torch.tensor(states["objective"], dtype=torch.uint8))
    saved = states["device"]
    if saved is not None:
        if saved["type"] != device.type:
            raise ValueError(f"RNG states of {saved['type']} devices cannot be restored on {device.type}")
        getattr(torch, device.type).set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in saved["states"]])
