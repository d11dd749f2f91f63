"""Resuming reads nothing but safetensors and JSON, only checkpoints of this run's classifier and decoder, and
refuses every restored value out of its range (naming the file and the field) before anything changes."""

import json
import math
import os
import re
import shutil

import pytest
import torch
from conftest import make_classifier
from safetensors import safe_open
from safetensors.torch import save_file
from test_cli import _image_folder as image_folder
from test_cli import run_aha
from training_helpers import image_dataset, processor, train_argv

from aha.persistence.fingerprints import short_fingerprint, weights_fingerprint
from aha.training import build_parser, train


# what accelerate's save_state writes (pickles): a resume must never read these names
ACCELERATE_PICKLES = (
    "custom_checkpoint_0.pkl",
    "custom_checkpoint_1.pkl",
    "random_states_0.pkl",
    "optimizer.bin",
    "scheduler.bin",
    "sampler.bin",
    "pytorch_model.bin",
    "scaler.pt",
)


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
    args = build_parser().parse_args(
        train_argv(output_dir, "--max_train_steps", 2, "--checkpointing_steps", 1, *extra)
    )
    splits = {"train": image_dataset(8).remove_columns("id")}
    return train(*args, classifier=classifier or make_classifier("vit"), image_processor=processor(), splits=splits)


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
    with pytest.raises(
        ValueError, match=r"another shape .*decoder\.\S+: checkpoint \(\d+, 16\).*this run's explainer \(\d+, 8\)"
    ):
        _run(tmp_path / "out", "--resume_from_checkpoint", checkpoint, "--explainer_config", "fusion_channels=8")


def test_a_truncated_checkpoint_file_is_named(tmp_path, checkpoint):
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    data = (planted / "optimizer.safetensors").read_bytes()
    (planted / "optimizer.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{planted / 'optimizer.safetensors'} is not a readable")):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)


# ------------------------------------------------------------------------------ every restored value is checked
def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _edit_safetensors(path, edit_tensors=None, edit_metadata=None):
    """Rewrite a safetensors file with ``edit_tensors(tensors)`` / ``edit_metadata(metadata)`` applied."""
    with safe_open(path, "pt") as handle:
        tensors, metadata = {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()
    if edit_tensors:
        edit_tensors(tensors)
    if edit_metadata:
        edit_metadata(metadata)
    save_file(tensors, path, metadata)


def _edit_param_group(name, value):
    def edit(metadata):
        groups = json.loads(metadata["param_groups"])
        groups[0][name] = value
        metadata["param_groups"] = json.dumps(groups)

    return dict(edit_metadata=edit)


def _first_decoder_weight(tensors):
    return next(key for key in sorted(tensors) if key.startswith("decoder."))


def _set(tensors, key, value):
    tensors[key] = value


# name -> (file, edit, what the message must say); the checkpoint is step 1 of a 2-step run, 4 batches an epoch
BAD_VALUES = {
    "completed_steps -5": (
        "training_state.json",
        lambda s: s.update(completed_steps=-5),
        "training_state.json: completed_steps must be an integer >= 1 and <= 2, got -5",
    ),
    "completed_steps 1e30": (
        "training_state.json",
        lambda s: s.update(completed_steps=10**30),
        "training_state.json: completed_steps must be an integer >= 1 and <= 2, got 1000000",
    ),
    "completed_steps 1.5": (
        "training_state.json",
        lambda s: s.update(completed_steps=1.5),
        "training_state.json: completed_steps must be an integer",
    ),
    "accelerator_step -1": (
        "training_state.json",
        lambda s: s.update(accelerator_step=-1),
        "training_state.json: accelerator_step must be an integer >= 0",
    ),
    "batch position 1e9": (
        "training_state.json",
        lambda s: s["data_position"].update(batches_in_epoch=10**9),
        "training_state.json: data_position.batches_in_epoch must be an integer >= 0 and <= 1",
    ),
    "epoch 5": (
        "training_state.json",
        lambda s: s["data_position"].update(epoch=5),
        "training_state.json: data_position.epoch must be an integer >= 0 and <= 1, got 5",
    ),
    "scheduler step 1e9": (
        "training_state.json",
        lambda s: s["lr_scheduler"].update(last_epoch=10**9),
        "training_state.json: lr_scheduler.last_epoch must be an integer >= -1 and <= 1",
    ),
    "scheduler lr NaN": (
        "training_state.json",
        lambda s: s["lr_scheduler"].update(_last_lr=[math.nan]),
        "training_state.json: lr_scheduler._last_lr[0] must be a finite number",
    ),
    "scheduler T_max": (
        "training_state.json",
        lambda s: s["lr_scheduler"].update(T_max=7),
        "training_state.json: lr_scheduler.T_max is 7, this run's is 2",
    ),
    "lr 1e308": (
        "optimizer.safetensors",
        _edit_param_group("lr", 1e308),
        "optimizer.safetensors: param_groups[0].lr must be a finite number >= 0 and <= 0.003",
    ),
    "betas [2, 0.999]": (
        "optimizer.safetensors",
        _edit_param_group("betas", [2, 0.999]),
        "optimizer.safetensors: param_groups[0].betas is (2, 0.999), this run's is (0.9, 0.999)",
    ),
    "eps -1e-8": (
        "optimizer.safetensors",
        _edit_param_group("eps", -1e-8),
        "optimizer.safetensors: param_groups[0].eps is -1e-08, this run's is 1e-08",
    ),
    "weight NaN": (
        "model.safetensors",
        dict(edit_tensors=lambda t: t[_first_decoder_weight(t)].view(-1)[0].fill_(math.nan)),
        "model.safetensors: decoder.",
    ),
    "moment NaN": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: t["state.0.exp_avg"].view(-1)[0].fill_(math.nan)),
        "optimizer.safetensors: state.0.exp_avg holds NaN or infinite values",
    ),
    "second moment < 0": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: t["state.0.exp_avg_sq"].view(-1)[0].fill_(-1)),
        "optimizer.safetensors: state.0.exp_avg_sq holds negative values",
    ),
    "moment shape": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: _set(t, "state.0.exp_avg", torch.zeros(3))),
        "optimizer.safetensors: state.0.exp_avg is (3,) torch.float32, this run's parameter is",
    ),
    "optimiser step 1e9": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: _set(t, "state.0.step", torch.tensor(1e9))),
        "optimizer.safetensors: state.0.step must be an integer >= 0 and <= 1",
    ),
    "torch RNG byte 300": (
        "rng_state_0.json",
        lambda s: s["torch"].__setitem__(0, 300),
        "rng_state_0.json: torch[0] must be an integer >= 0 and <= 255, got 300",
    ),
    "numpy RNG position": (
        "rng_state_0.json",
        lambda s: s["numpy"].__setitem__(2, 625),
        "rng_state_0.json: numpy[2] (position) must be an integer >= 0 and <= 624, got 625",
    ),
    "python RNG index": (
        "rng_state_0.json",
        lambda s: s["python"][1].__setitem__(-1, 10**6),
        "rng_state_0.json: the python or numpy RNG state cannot be restored",
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_a_bad_restored_value_is_refused_naming_the_file_and_the_field(tmp_path, checkpoint, case):
    name, edit, message = BAD_VALUES[case]
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    if name.endswith(".json"):
        _edit_json(planted / name, edit)
    else:
        _edit_safetensors(planted / name, **edit)
    with pytest.raises(ValueError, match=re.escape(f"{planted / name}: {message.split(': ', 1)[1]}")):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")  # nothing written


def test_the_untouched_checkpoint_still_resumes(tmp_path, checkpoint):
    """The checks above refuse edits, not the values a run writes: a copy of the checkpoint resumes."""
    planted = tmp_path / "checkpoint"
    shutil.copytree(checkpoint, planted)
    _run(tmp_path / "out", "--resume_from_checkpoint", planted)
    assert (tmp_path / "out" / "checkpoints" / "step_2").is_dir()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A finished 2-step ``aha train`` run of a saved classifier on an image folder, checkpointed at each step."""
    root = tmp_path_factory.mktemp("cli")
    make_classifier("vit").save_pretrained(root / "classifier")
    processor().save_pretrained(root / "classifier")
    image_folder(root / "train", per_class=2, seed=0)
    argv = [
        "train",
        "--model_name_or_path",
        root / "classifier",
        "--train_dir",
        root / "train",
        "--output_dir",
        root / "out",
        "--max_train_steps",
        2,
        "--checkpointing_steps",
        1,
        "--per_device_train_batch_size",
        3,
        "--learning_rate",
        "3e-3",
        "--num_warmup_steps",
        0,
        "--seed",
        0,
    ]
    run = run_aha(*argv)
    assert run.returncode == 0, run.stderr[-3000:]
    return root / "out", argv


def _files(folder):
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# one bad value of each class, as a user meets it: `aha train --resume_from_checkpoint latest` in a subprocess
CLI_CASES = {
    "counter out of range": ("training_state.json", lambda s: s.update(completed_steps=10**30), "completed_steps"),
    "non-finite tensor": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: t["state.0.exp_avg_sq"].view(-1)[0].fill_(math.inf)),
        "state.0.exp_avg_sq holds NaN or infinite values",
    ),
    "bad hyper-parameter": ("optimizer.safetensors", _edit_param_group("betas", [2, 0.999]), "param_groups[0].betas"),
    "shape mismatch": (
        "optimizer.safetensors",
        dict(edit_tensors=lambda t: _set(t, "state.1.exp_avg", torch.zeros(2, 2))),
        "state.1.exp_avg is (2, 2)",
    ),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_aha_train_refuses_a_bad_checkpoint_value_and_changes_nothing(tmp_path, cli_run, case):
    finished, argv = cli_run
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    name, edit, field = CLI_CASES[case]
    path = out / "checkpoints" / "step_2" / name
    if name.endswith(".json"):
        _edit_json(path, edit)
    else:
        _edit_safetensors(path, **edit)
    before = _files(out)
    argv = [str(out) if str(arg) == str(finished) else arg for arg in argv]
    run = run_aha(*argv, "--resume_from_checkpoint", "latest")
    assert run.returncode != 0
    assert f"{path}: {field}" in run.stderr, run.stderr[-2000:]
    assert _files(out) == before


def test_a_step_counter_that_contradicts_its_folder_is_refused(tmp_path, checkpoint):
    planted = tmp_path / "checkpoints" / "step_1"
    shutil.copytree(checkpoint, planted)
    _edit_json(planted / "training_state.json", lambda s: s.update(completed_steps=2))
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"{planted / 'training_state.json'}: completed_steps is 2, but the checkpoint's folder says step 1"
        ),
    ):
        _run(tmp_path / "out", "--resume_from_checkpoint", planted)
