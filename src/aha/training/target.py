"""The frozen target classifier: loading it, and recomputing its activations in the backward pass.

Training runs the target on ``num_fractions x 2 curves x 2 classes`` perturbed copies of every image,
and backpropagates through it to the masks; its activations dominate memory. The target is frozen and
kept in eval mode, but transformers only checkpoints a ``GradientCheckpointingLayer`` whose own
``training`` flag is set. :func:`checkpoint_target_layers` sets that flag on those layer modules alone
(not on their children: attention dropout and drop-path read their own flags and stay off), so the
target computes exactly what it computes in eval mode and recomputes each layer during backward.
"""

from __future__ import annotations

from torch import nn
from transformers import AutoImageProcessor, AutoModelForImageClassification
from transformers.modeling_layers import GradientCheckpointingLayer


def load_target(model_name_or_path: str):
    """The classifier (``AutoModelForImageClassification``) and its ``AutoImageProcessor``."""
    classifier = AutoModelForImageClassification.from_pretrained(model_name_or_path)
    image_processor = AutoImageProcessor.from_pretrained(model_name_or_path)
    return classifier, image_processor


def checkpoint_target_layers(classifier: nn.Module) -> int:
    """Enable non-reentrant gradient (activation) checkpointing in a frozen, eval-mode classifier. Returns the number of
    checkpointed layers (0 when the model does not support it). Call again after every ``.train()`` /
    ``.eval()`` of the explainer, which resets the flags."""
    if not getattr(classifier, "supports_gradient_checkpointing", False):
        return 0
    if not classifier.is_activation_checkpointing:
        classifier.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    layers = [module for module in classifier.modules() if isinstance(module, GradientCheckpointingLayer)]
    for layer in layers:
        layer.training = True
    return len(layers)
