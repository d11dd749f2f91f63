"""The benchmark suite: every world by name, for ``aha demo --world``.

Each world (:class:`aha.demo.canvas.World`) is a procedural classification dataset with a ground-truth mask
per image, drawn with the machinery they share (:mod:`aha.demo.canvas`), and of its own character:

- ``shapes`` (:mod:`aha.demo.shapes`): one compact object whose silhouette decides the class;
- ``letters`` (:mod:`aha.demo.letters`): fine structure inside the object decides (E, F, P, B, R);
- ``parts`` (:mod:`aha.demo.parts`): two separate regions decide together (the pair of two parts' kinds).
"""

from __future__ import annotations

from . import letters, parts, shapes
from .canvas import World


WORLDS: dict[str, World] = {world.name: world for world in (shapes.WORLD, letters.WORLD, parts.WORLD)}


def get_world(name: str) -> World:
    """The world called ``name`` (a key of :data:`WORLDS`)."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; expected one of {sorted(WORLDS)}")
    return WORLDS[name]
