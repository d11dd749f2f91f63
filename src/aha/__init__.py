"""aha-explain: learn-to-rank visual attribution (AHA) for Hugging Face image classifiers."""

from transformers import AutoConfig, AutoModel

from .configuration_aha import AHAConfig
from .modeling_aha import AHAExplainer, AHAExplainerOutput
from .pipeline import ImageAttributionPipeline, register_pipeline


__version__ = "0.1.0"

AutoConfig.register(AHAConfig.model_type, AHAConfig, exist_ok=True)
AutoModel.register(AHAConfig, AHAExplainer, exist_ok=True)
register_pipeline()  # pipeline("image-attribution", model=...)

__all__ = ["AHAConfig", "AHAExplainer", "AHAExplainerOutput", "ImageAttributionPipeline"]
