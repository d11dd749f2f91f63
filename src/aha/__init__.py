"""aha-explain: learn-to-rank visual attribution (AHA) for Hugging Face image classifiers.

``import aha`` is light (no torch): the classes below load on first use (PEP 562, as transformers does), and
the "aha" model type and the ``"image-attribution"`` pipeline are registered with transformers as soon as
its auto classes or pipelines are imported (:mod:`aha.registration`).
"""

from __future__ import annotations

import importlib
import sys

from .registration import register, register_when_transformers_loads


__version__ = "0.1.0"
#: the pipeline task of explainers (``pipeline("image-attribution", ...)``, the ``pipeline_tag`` of their model cards):
#: here, so that the pipeline and the model cards share it without importing each other
TASK = "image-attribution"

#: public name -> the module defining it, imported on first access
_EXPORTS = {
    "AHAConfig": ".modeling.configuration_aha",
    "AHAExplainer": ".modeling.modeling_aha",
    "AHAExplainerOutput": ".modeling.modeling_aha",
    "ImageAttributionPipeline": ".pipeline",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aha' has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


register_when_transformers_loads(sys.modules[__name__])  # last: registering may import the modules above
