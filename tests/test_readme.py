"""Every ```python block of README.md runs as written, in order, as one session (a reader following the README).

The one fixture, :func:`readme_world`, stands in for what the README names but a test machine lacks, each at its
boundary, never by editing the code: the Hub ids it loads are tiny models laid out in a Hub cache
(``huggingface_hub.constants.HF_HUB_CACHE``, read by every download), uploads go through the ``hub`` fixture
(``HfApi.create_repo`` / ``create_commit`` write into a folder), and the image files it opens are random images
in the working directory. A block that cannot run offline is marked in the README by ``<!-- needs-network -->``
on the line before it, and is skipped here with that reason.
"""

import re
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
import transformers as T
from conftest import _vit_kwargs, add_to_hub_cache
from PIL import Image
from test_pipeline import random_image

from aha import AHAExplainer


README = Path(__file__).resolve().parent.parent / "README.md"
NEEDS_NETWORK = "<!-- needs-network -->"
#: Hub ids the README loads -> what stands in for them (the classifier: 1000 ImageNet-like classes, 281 "tabby cat")
CLASSIFIER_ID, EXPLAINER_ID = "google/vit-base-patch16-224", "org/aha-vit-b16"
IMAGE_FILES = {"cat.jpg": (48, 40), "dog.png": (33, 51), "a.jpg": (40, 40), "b.png": (64, 30)}


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, needs the network) of each ```python block."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), before.strip() == NEEDS_NETWORK))
    return blocks


def test_the_readme_has_python_blocks_and_the_marker_is_found():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 8 and all(code.strip() for _, code, _ in blocks)
    text = f"intro\n{NEEDS_NETWORK}\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n", True), (7, "y = 2\n", False)]


@pytest.fixture
def readme_world(tmp_path, monkeypatch, hub):
    """A working directory holding the README's image files, and a Hub cache holding its Hub ids: a tiny
    ViT with its image processor as ``google/vit-base-patch16-224``, and an (untrained) AHA explainer of it as
    ``org/aha-vit-b16``; uploads land in the ``hub`` fixture's folder (returned)."""
    labels = {i: f"class {i}" for i in range(1000)} | {281: "tabby cat"}
    torch.manual_seed(0)
    classifier = T.ViTForImageClassification(
        T.ViTConfig(
            **{**_vit_kwargs(), "num_labels": 1000}, id2label=labels, label2id={v: k for k, v in labels.items()}
        )
    ).eval()
    processor = T.ViTImageProcessorPil(size={"height": 32, "width": 32})
    classifier.save_pretrained(tmp_path / "models" / "classifier")
    processor.save_pretrained(tmp_path / "models" / "classifier")
    cache = tmp_path / "cache"
    add_to_hub_cache(cache, CLASSIFIER_ID, tmp_path / "models" / "classifier")
    AHAExplainer.from_classifier(classifier, image_processor=processor).save_pretrained(
        tmp_path / "models" / "explainer"
    )
    add_to_hub_cache(cache, EXPLAINER_ID, tmp_path / "models" / "explainer")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    work = tmp_path / "work"
    work.mkdir()
    for seed, (name, (height, width)) in enumerate(IMAGE_FILES.items()):
        random_image(height, width, seed=seed).save(work / name)
    monkeypatch.chdir(work)
    return hub[0]


def test_every_python_block_of_the_readme_runs_as_written(readme_world):
    namespace = {"__name__": "__readme__"}
    skipped = []
    for line, code, needs_network in python_blocks(README.read_text()):
        if needs_network:
            skipped.append(line)
            continue
        exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
    # what the blocks left behind is what they say they make
    with Image.open("cat_aha.png") as picture:
        assert picture.width > IMAGE_FILES["cat.jpg"][1]  # the overlay, with its colour bar and caption
    assert (readme_world / "you" / "aha-vit-b16" / "model.safetensors").is_file()
    assert Path("curves.png").is_file() and Path("aha-vit-b16", "config.json").is_file()
    assert np.isfinite(namespace["results"]["deletion_auc"])
    if skipped:
        pytest.skip(f"README blocks at lines {skipped} need the network ({NEEDS_NETWORK})")
