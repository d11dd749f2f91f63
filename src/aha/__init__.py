"""aha-explain: learn-to-rank visual attribution (AHA) for Hugging Face image classifiers."""

__version__ = "0.1.0"
