"""Fingerprints: digests of what decides an explainer's maps, recorded when it is saved and checked when it is loaded.

- :func:`weights_fingerprint`: the classifier's weights (``AHAConfig.classifier_fingerprint``; a training checkpoint
  records it too).
- :func:`saved_fingerprints`: everything else a save holds that decides a map (``AHAConfig.fingerprints``): the
  explainer's own weights (decoder, feature backbone), the classifier's config (its labels, architecture fields,
  ...), the explainer's own config fields, and the image processor's settings (mean, std, size, resample,
  rescaling, ...). :func:`changed_parts` says which of them differ.

A fingerprint guards against files edited or damaged after saving (an edited mean or swapped ``id2label`` change
the maps without any error); it is not a signature: whoever edits a file can record a new fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

import torch
from torch import nn


FINGERPRINT_ALGORITHM = "sha256"

#: the parts of :func:`saved_fingerprints` and what each covers (for messages)
FINGERPRINTED_PARTS = {
    "weights": "the explainer's own weights: decoder, feature backbone",
    "classifier_config": "classifier_config: the classifier's id2label/label2id, num_labels, architecture fields",
    "explainer_config": "the explainer's own config fields: decoder, feature layers, normalisation, objective",
    "image_processor": "the image processor's settings: image_mean, image_std, size, resample, rescaling, ...",
}
#: config.json keys outside the fingerprints: the fingerprints themselves (the classifier's is checked on its own),
#: where the classifier is loaded from (a moved classifier can be pointed at; its weights are still checked), and
#: transformers' bookkeeping
UNFINGERPRINTED_CONFIG_KEYS = frozenset(
    {
        "fingerprints",
        "classifier_fingerprint",
        "classifier_name_or_path",
        "classifier_revision",
        "transformers_version",
        "_name_or_path",
        "_commit_hash",
    }
)


def tensors_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """A digest of the named ``tensors``: ``"sha256:<64 hex digits>"``.

    What is hashed, tensor by tensor in sorted key order: one header line ``"<key>|<dtype>|<shape>\\n"`` (UTF-8,
    e.g. ``"vit.embeddings.cls_token|float32|(1, 1, 768)\\n"``), then the tensor's raw bytes in C order and the
    machine's byte order (little-endian on every platform torch supports). The digest covers the exact stored
    values, so the same weights cast to another dtype (e.g. float16) give another fingerprint. Cost: one read of
    the tensors (a ViT-B, 350 MB in float32, hashes in about half a second on one CPU core).
    """
    digest = hashlib.new(FINGERPRINT_ALGORITHM)
    for key, tensor in sorted(tensors.items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return f"{FINGERPRINT_ALGORITHM}:{digest.hexdigest()}"


def weights_fingerprint(model: nn.Module) -> str:
    """:func:`tensors_fingerprint` of ``model.state_dict()`` (keys relative to ``model``, so a classifier hashes the
    same standalone and inside an explainer; non-persistent buffers are not in the state dict and are not hashed)."""
    return tensors_fingerprint(model.state_dict())


def json_fingerprint(value) -> str:
    """A digest of a JSON value: ``"sha256:<64 hex digits>"`` of its compact serialisation with sorted keys (so
    the same settings give the same digest however the file was indented or ordered)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"{FINGERPRINT_ALGORITHM}:{hashlib.new(FINGERPRINT_ALGORITHM, text.encode()).hexdigest()}"


def saved_fingerprints(
    weights: Mapping[str, torch.Tensor], config: dict, image_processor: dict | None
) -> dict[str, str | None]:
    """The fingerprint of each part of a save (:data:`FINGERPRINTED_PARTS`).

    Args:
        weights: the explainer's weights without the frozen classifier's (its own: decoder, feature backbone).
        config: config.json as written (a dict); :data:`UNFINGERPRINTED_CONFIG_KEYS` are left out.
        image_processor: preprocessor_config.json as written, or None when the save has none.
    """
    config = {key: value for key, value in config.items() if key not in UNFINGERPRINTED_CONFIG_KEYS}
    return {
        "weights": tensors_fingerprint(weights),
        "classifier_config": json_fingerprint(config.pop("classifier_config", None)),
        "explainer_config": json_fingerprint(config),
        "image_processor": None if image_processor is None else json_fingerprint(image_processor),
    }


def changed_parts(recorded: Mapping[str, str | None], current: Mapping[str, str | None]) -> list[str]:
    """The parts of :data:`FINGERPRINTED_PARTS` whose fingerprints differ between ``recorded`` and ``current``."""
    return [part for part in FINGERPRINTED_PARTS if recorded.get(part) != current.get(part)]


def short_fingerprint(fingerprint: str | None) -> str:
    """The algorithm and first 12 hex digits of a fingerprint, for messages (``"none recorded"`` for None)."""
    if not fingerprint:
        return "none recorded"
    algorithm, _, digest = fingerprint.partition(":")
    return f"{algorithm}:{digest[:12]}..."
