"""Shared fixtures: tiny random classifiers built from configs, never downloaded."""

import os
import shutil
import sys
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers as T
from huggingface_hub import CommitInfo, HfApi, RepoUrl


IMAGE_SIZE = 32
NUM_LABELS = 5
#: The web demo's folder: an app on the library's public API, not part of the package. Its modules (uploads,
#: comparison, demo_explainer) are imported from there, as ``python app.py`` imports them beside the page.
SPACE = Path(__file__).resolve().parents[1] / "spaces" / "aha-explain"
sys.path.insert(0, str(SPACE))


def _vit_kwargs():
    return dict(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=NUM_LABELS,
    )


TINY_CLASSIFIERS = {
    "vit": lambda: T.ViTForImageClassification(T.ViTConfig(**_vit_kwargs())),
    "deit": lambda: T.DeiTForImageClassification(T.DeiTConfig(**_vit_kwargs())),
    "deit_teacher": lambda: T.DeiTForImageClassificationWithTeacher(T.DeiTConfig(**_vit_kwargs())),
    "beit": lambda: T.BeitForImageClassification(T.BeitConfig(**_vit_kwargs(), use_mean_pooling=True)),
    "dinov2": lambda: T.Dinov2ForImageClassification(
        T.Dinov2Config(**{k: v for k, v in _vit_kwargs().items() if k != "intermediate_size"}, mlp_ratio=2)
    ),
    "swin": lambda: T.SwinForImageClassification(
        T.SwinConfig(
            image_size=IMAGE_SIZE,
            patch_size=2,
            embed_dim=16,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=2,
            num_labels=NUM_LABELS,
        )
    ),
}


def _he_init(model):
    """Kaiming-normal convolutions and unit batch-norm scales: the own init of EfficientNet, MobileNetV2 and MobileViT
    (normal with std 0.02, batch-norm scales included) shrinks their activations to 0 by the last stage, leaving
    nothing to read or explain."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    return model


# classifiers whose hidden states are feature maps (B, C, h, w): the model-agnostic methods, Grad-CAM and AHA take
# them; the attention methods refuse them
CONVOLUTIONAL_CLASSIFIERS = {
    "resnet": lambda: T.ResNetForImageClassification(
        T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=NUM_LABELS)
    ),
    "convnext": lambda: T.ConvNextForImageClassification(
        T.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=NUM_LABELS)
    ),
    "convnextv2": lambda: T.ConvNextV2ForImageClassification(
        T.ConvNextV2Config(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=NUM_LABELS)
    ),
    "regnet": lambda: T.RegNetForImageClassification(
        T.RegNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8, num_labels=NUM_LABELS)
    ),
    "efficientnet": lambda: _he_init(
        T.EfficientNetForImageClassification(
            T.EfficientNetConfig(
                image_size=IMAGE_SIZE,
                width_coefficient=0.25,
                depth_coefficient=0.25,
                kernel_sizes=[3, 3, 5],
                in_channels=[32, 16, 24],
                out_channels=[16, 24, 40],
                strides=[1, 2, 2],
                num_block_repeats=[1, 1, 1],
                expand_ratios=[1, 2, 2],
                depthwise_padding=[],
                hidden_dim=320,  # the top convolution's width, round_filters(1280) at width 0.25
                num_labels=NUM_LABELS,
            )
        )
    ),
    "mobilenet_v2": lambda: _he_init(
        T.MobileNetV2ForImageClassification(
            T.MobileNetV2Config(
                image_size=IMAGE_SIZE,
                depth_multiplier=0.25,
                min_depth=8,
                finegrained_output=False,
                num_labels=NUM_LABELS,
            )
        )
    ),
    "mobilevit": lambda: _he_init(
        T.MobileViTForImageClassification(
            T.MobileViTConfig(
                image_size=IMAGE_SIZE,
                patch_size=2,
                hidden_sizes=[8, 12, 16],
                neck_hidden_sizes=[8, 8, 12, 12, 16, 16, 32],
                num_attention_heads=2,
                mlp_ratio=1.0,
                num_labels=NUM_LABELS,
            )
        )
    ),
}


def make_classifier(name: str = "vit", seed: int = 0, attn_implementation: str | None = None, head_scale: float = 1.0):
    """A tiny random-init classifier of the named family, in eval mode.

    ``head_scale`` multiplies the classification head (the last linear layer of ``model.classifier``): a random head's
    softmax is nearly uniform, so perturbing pixels barely moves it; a sharpened head (20-30) gives metrics and training
    a signal.
    """
    torch.manual_seed(seed)
    model = {**TINY_CLASSIFIERS, **CONVOLUTIONAL_CLASSIFIERS}[name]()
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)
    if head_scale != 1.0:
        head = [m for m in model.classifier.modules() if isinstance(m, torch.nn.Linear)][-1]  # ResNet: Flatten, Linear
        with torch.no_grad():
            head.weight.mul_(head_scale)
    return model.eval()


@pytest.fixture
def tiny_vit():
    return make_classifier("vit")


@pytest.fixture(scope="module")
def vit():
    """Tiny random ViT with a sharpened head, so that perturbations move the probabilities visibly."""
    return make_classifier("vit", head_scale=20)


def images_forwarded(model) -> list[int]:
    """A list that grows by the batch size of every forward of ``model``."""
    counts = []
    model.register_forward_hook(lambda module, args, output: counts.append(len(output.logits)))
    return counts


@pytest.fixture
def maps():
    """Random (4, 32, 32) attribution maps."""
    return torch.randn(4, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def images():
    """A batch of 4 images in the classifier's normalised space, (4, 3, 32, 32) float32."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far faster than on two when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """Every create_commit lands in tmp_path/hub/<repo id>; returns that root and the calls made."""
    root, calls = tmp_path / "hub", []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, *, commit_message, **kwargs):
        calls.append(("create_commit", repo_id, commit_message))
        for operation in operations:
            target = root / repo_id / operation.path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(operation.path_or_fileobj, target)
        return CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/0",
            commit_message=commit_message,
            commit_description="",
            oid="0" * 40,
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return root, calls


def add_to_hub_cache(cache, repo_id: str, folder, revision: str = "0" * 40) -> None:
    """Lay ``folder`` out as the Hub cache's snapshot of ``repo_id`` (at ``revision``, its ``main``): loading the
    repo id with that cache resolves offline, through huggingface_hub's own cache lookup."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
