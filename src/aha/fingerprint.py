"""Fingerprints of model weights: what a decoder-only explainer checks its classifier against on load."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


FINGERPRINT_ALGORITHM = "sha256"


def weights_fingerprint(model: nn.Module) -> str:
    """A digest of every tensor in ``model.state_dict()``: ``"sha256:<64 hex digits>"``.

    What is hashed, tensor by tensor in sorted key order (keys relative to ``model``, so a classifier hashes
    the same standalone and inside an explainer): one header line ``"<key>|<dtype>|<shape>\\n"`` (UTF-8, e.g.
    ``"vit.embeddings.cls_token|float32|(1, 1, 768)\\n"``), then the tensor's raw bytes in C order and the
    machine's byte order (little-endian on every platform torch supports). Non-persistent buffers are not in
    the state dict and are not hashed. Units: the digest covers the exact stored values, so the same weights
    cast to another dtype (e.g. float16) give another fingerprint. Cost: one read of the weights (a ViT-B,
    350 MB in float32, hashes in about half a second on one CPU core).
    """
    digest = hashlib.new(FINGERPRINT_ALGORITHM)
    for key, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return f"{FINGERPRINT_ALGORITHM}:{digest.hexdigest()}"


def short_fingerprint(fingerprint: str | None) -> str:
    """The algorithm and first 12 hex digits of a fingerprint, for messages (``"none recorded"`` for None)."""
    if not fingerprint:
        return "none recorded"
    algorithm, _, digest = fingerprint.partition(":")
    return f"{algorithm}:{digest[:12]}..."
