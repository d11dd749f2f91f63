"""Registering AHA with transformers (the ``"aha"`` model type for ``AutoConfig`` / ``AutoModel``, and the
``"image-attribution"`` pipeline task) without making ``import aha`` import torch.

Registering needs the classes, hence torch. ``import aha`` therefore registers at once only when transformers'
auto classes or pipelines are already loaded; otherwise it registers as soon as one of them is imported
(``from transformers import pipeline`` or ``AutoModel``, before or after ``import aha``), through a
post-import hook on ``transformers.*`` and ``aha.*`` modules that registers once no such module is still
being executed, or when an ``aha`` class is first used. The ``aha`` command thereby answers ``--help``
without importing torch.
"""

from __future__ import annotations

import sys


#: importing any of these makes the registration happen (they are what looks an "aha" model type or task up)
TRIGGERS = (
    "transformers.pipelines",
    "transformers.models.auto.configuration_auto",
    "transformers.models.auto.modeling_auto",
)
_registered = False


def register() -> None:
    """Register the "aha" model type and the "image-attribution" task with transformers (once; idempotent)."""
    global _registered
    if _registered:
        return
    _registered = True  # before the imports below, which reach the hook again
    _remove_hook()
    try:
        from transformers import AutoConfig, AutoModel

        from .modeling.configuration_aha import AHAConfig
        from .modeling.modeling_aha import AHAExplainer
        from .pipeline import register_pipeline

        AutoConfig.register(AHAConfig.model_type, AHAConfig, exist_ok=True)
        AutoModel.register(AHAConfig, AHAExplainer, exist_ok=True)
        register_pipeline()
    except BaseException:
        _registered = False
        raise


#: the packages whose modules the hook watches
WATCHED = ("transformers", "aha")


def _watched(name: str) -> bool:
    return name.split(".", 1)[0] in WATCHED


def _initialising(current: object = None) -> bool:
    """Whether a transformers or aha module other than ``current`` is still being executed (registering then
    would import a half-initialised module)."""
    return any(
        getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
        if _watched(name) and module is not current
    )


def _register_if_ready(current: object = None) -> None:
    if not _registered and any(name in sys.modules for name in TRIGGERS) and not _initialising(current):
        register()


class _RegisterAfter:
    """Wraps the loader of a ``transformers.*`` or ``aha.*`` module: runs it, then registers if a trigger is now
    loaded. Everything else (``get_code`` for ``python -m``, resource readers, ...) is the wrapped loader's."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the module sees only its own loader
        self.loader.exec_module(module)
        _register_if_ready(module)


class _PostImportHook:
    """Finds ``transformers.*`` and ``aha.*`` modules with the other finders and wraps their loader in :class:`_RegisterAfter`."""

    def find_spec(self, name, path, target=None):
        if _registered or "." not in name or not _watched(name):
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RegisterAfter(spec.loader)
                return spec
        return None


_HOOK = _PostImportHook()


def _remove_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def register_when_transformers_loads(package: object) -> None:
    """Register now if transformers' auto classes or pipelines are loaded, else as soon as one is; called at the
    end of ``aha/__init__.py`` with the ``aha`` package (still being executed then)."""
    _register_if_ready(package)
    if not _registered and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)
