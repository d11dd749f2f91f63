"""Resuming reads nothing but safetensors and JSON, and only checkpoints of this run's classifier and decoder."""

import os
import re
import shutil

import pytest
import torch
from conftest import make_classifier
from safetensors import safe_open
from training_helpers import image_dataset, processor, train_argv

from aha.fingerprint import short_fingerprint, weights_fingerprint
from aha.training import build_parser, train


# what accelerate's save_state writes (pickles): a resume must never read these names
ACCELERATE_PICKLES = ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl", "optimizer.bin",
                      "scheduler.bin", "sampler.bin", "pytorch_model.bin", "scaler.pt")


class _CreatesFile:
    """Unpickling this runs ``open(path, "w")``: the marker file appears if anything unpickles it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _plant(path, marker):
    """Replace ``path`` with a crafted pickle (torch.save's zip format, as accelerate's state files)."""
    if os.path.exists(path):
        os.remove(path)
    torch.save({"state": _CreatesFile(marker)}, path)


def _run(output_dir, *extra, classifier=None):
    args = build_parser().parse_args(train_argv(output_dir, "--max_train_steps", 2, "--checkpointing_steps", 1, *extra))
    splits = {"train": image_dataset(8).remove_columns("id")}
    return train(args, classifier or make_classifier("vit"), processor(), splits)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Step 1 of a 2-step run."""
    output_dir = tmp_path_factory.mktemp("run")
    _run(output_dir)
    return output_dir / "checkpoints" / "step_1"


def test_the_crafted_pickle_really_runs_code_when_unpickled(tmp_path):
    _plant(tmp_path / "file", tmp_path / "marker")
    torch.load(tmp_path / "file", weights_only=False)
    assert (tmp_path / "marker").exists()


def test_a_checkpoint_holds_only_safetensors_and_json_and_no_classifier(checkpoint):
    files = sorted(os.listdir(checkpoint))
    assert files == ["model.safetensors", "optimizer.safetensors", "rng_state_0.json", "training_state.json"]
    with safe_open(checkpoint / "model.safetensors", "pt") as weights:
        assert weights.keys() and not any(key.startswith("classifier.") for key in weights.keys())
        assert weights.metadata()["classifier_fingerprint"] == weights_fingerprint(make_classifier("vit"))


@pytest.mark.parametrize(
    "name", ["model.safetensors", "optimizer.safetensors", "rng_state_0.json", "training_state.json"]
)
def test_a_pickle_in_any_checkpoint_file_is_refused_and_never_run(tmp_path, checkpoint, name):
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    _plant(planted / name, tmp_path / "marker")
    kind = "JSON" if name.endswith(".json") else "safetensors"
    with pytest.raises(ValueError, match=re.escape(f"{planted / name} is not a readable {kind} file")):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)
    assert not (tmp_path / "marker").exists()


def test_accelerate_pickles_beside_a_checkpoint_are_never_read(tmp_path, checkpoint):
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    for name in ACCELERATE_PICKLES:
        _plant(planted / name, tmp_path / "marker")
    _run(tmp_path / "out", "--resume_from_checkpoint", planted)
    assert not (tmp_path / "marker").exists()


def test_an_accelerate_checkpoint_is_refused_by_name(tmp_path, checkpoint):
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    os.remove(planted / "training_state.json")
    _plant(planted / "custom_checkpoint_0.pkl", tmp_path / "marker")
    with pytest.raises(FileNotFoundError, match="has no training_state.json.*pickles and are never read"):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)
    assert not (tmp_path / "marker").exists()


def test_a_checkpoint_of_another_classifier_is_refused_naming_both(tmp_path, checkpoint):
    other = make_classifier("vit", seed=1)
    expected = re.escape(
        f"another classifier: the checkpoint's classifier has the weights fingerprint "
        f"{short_fingerprint(weights_fingerprint(make_classifier('vit')))}, this run's classifier "
        f"(--model_name_or_path) has {short_fingerprint(weights_fingerprint(other))}"
    )
    with pytest.raises(ValueError, match=expected):
        _run(tmp_path / "out", "--resume_from_checkpoint", checkpoint, classifier=other)


def test_a_checkpoint_of_another_decoder_shape_is_refused_naming_both(tmp_path, checkpoint):
    with pytest.raises(ValueError, match=r"another shape .*decoder\.\S+: checkpoint \(\d+, 16\).*this run's explainer \(\d+, 8\)"):
        _run(tmp_path / "out", "--resume_from_checkpoint", checkpoint, "--explainer_config", "fusion_channels=8")


def test_a_truncated_checkpoint_file_is_named(tmp_path, checkpoint):
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    data = (planted / "optimizer.safetensors").read_bytes()
    (planted / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{planted / 'optimizer.safetensors'} is not a readable")):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)
