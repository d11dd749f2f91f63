"""The training loop: the loss falls, resuming is exact, two processes stay in sync, bad set-ups fail early."""

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys

import pytest
import torch
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import set_seed
from conftest import make_classifier
from safetensors import safe_open
from training_helpers import image_dataset, processor, sharp_classifier, train_argv
from transformers import AutoModelForImageClassification

import aha.training.loop as loop_module
from aha import AHAExplainer
from aha.data import train_dataloader
from aha.training import (
    DataArguments,
    ModelArguments,
    OptimisationArguments,
    RunArguments,
    as_flags,
    build_parser,
    check_arguments,
    latest_checkpoint,
    save_checkpoint,
    train,
)
from aha.training.schedule import warmup_cosine_schedule


def _args(output_dir, *extra):
    """``(data, model, optimisation, run)`` as ``aha train`` parses ``train_argv``'s flags and ``extra``."""
    return build_parser().parse_args(train_argv(output_dir, *extra))


def _inputs(splits) -> dict:
    """The in-memory classifier, image processor and data of :func:`train`."""
    return {"classifier": make_classifier("vit"), "image_processor": processor(), "splits": splits}


def _splits(streaming: bool, n: int = 16):
    train_split = image_dataset(n).remove_columns("id")
    return {"train": train_split.to_iterable_dataset(num_shards=4) if streaming else train_split}


def _heldout_loss(explainer, batch) -> float:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return sum(explainer.eval()(**batch, generator=generator).loss.item() for _ in range(3)) / 3


@pytest.mark.parametrize("streaming", [False, True], ids=["dataset", "stream"])
def test_training_lowers_the_loss(tmp_path, streaming):
    heldout = processor()(list(image_dataset(8, seed=1)["image"]), return_tensors="pt")
    batch = {"pixel_values": heldout["pixel_values"], "labels": torch.arange(8) % 5}
    set_seed(0)
    untrained = AHAExplainer.from_classifier(sharp_classifier(), image_processor=processor())
    # 48 steps: the default (guided) head learns these random-noise images more slowly than the conv head did
    args = _args(tmp_path, "--max_train_steps", 48, "--shuffle_buffer_size", 0)
    trained = train(*args, classifier=sharp_classifier(), image_processor=processor(), splits=_splits(streaming))
    assert _heldout_loss(trained, batch) < _heldout_loss(untrained, batch) - 0.005
    reloaded = AHAExplainer.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), trained.state_dict().values()))


def test_decoder_only_output_references_the_saved_target(tmp_path):
    sharp_classifier().save_pretrained(tmp_path / "target")
    target = AutoModelForImageClassification.from_pretrained(tmp_path / "target")
    args = _args(tmp_path / "out", "--max_train_steps", 1, "--decoder_only")
    trained = train(*args, classifier=target, image_processor=processor(), splits=_splits(streaming=False))
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as weights:
        assert not any(key.startswith("classifier.") for key in weights.keys())
    reloaded = AHAExplainer.from_pretrained(tmp_path / "out")  # loads the target from the recorded path
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), trained.state_dict().values()))


class _Crash(Exception):
    pass


@pytest.mark.parametrize("streaming", [False, True], ids=["dataset", "stream"])
def test_resume_after_a_crash_ends_with_identical_weights(tmp_path, monkeypatch, streaming):
    """6 steps of 2 micro-batches over 16 images (4 steps per epoch): the crash at step 3 is mid-epoch."""
    extra = (
        "--max_train_steps",
        6,
        "--gradient_accumulation_steps",
        2,
        "--checkpointing_steps",
        3,
        "--shuffle_buffer_size",
        0,
        "--eval_steps",
        3,
    )
    splits = dict(_splits(streaming), validation=image_dataset(4, seed=2).remove_columns("id"))
    uninterrupted = train(*_args(tmp_path / "a", *extra), **_inputs(splits))

    def crash_after_step_3(state, output_dir, step):
        path = save_checkpoint(state, output_dir, step)
        if step == 3:
            raise _Crash
        return path

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_step_3)
    with pytest.raises(_Crash):
        train(*_args(tmp_path / "b", *extra), **_inputs(splits))
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "b").endswith("step_3")
    resumed = train(*_args(tmp_path / "b", *extra, "--resume_from_checkpoint", "latest"), **_inputs(splits))
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


class _State:
    """Stands in for a TrainingState: save_checkpoint only needs its accelerator and write()."""

    def __init__(self, crash: bool):
        from accelerate import Accelerator

        self.accelerator, self.crash = Accelerator(cpu=True), crash

    def write(self, directory):
        open(os.path.join(directory, "model.safetensors"), "w").close()
        if self.crash:
            raise _Crash


def test_interrupted_checkpoint_never_looks_complete(tmp_path):
    with pytest.raises(_Crash):
        save_checkpoint(_State(crash=True), str(tmp_path), 5)
    assert latest_checkpoint(str(tmp_path)) is None
    assert save_checkpoint(_State(crash=False), str(tmp_path), 5) == latest_checkpoint(str(tmp_path))
    assert os.listdir(tmp_path / "checkpoints") == ["step_5"]


def _two_process_run(output_dir):
    """Runs in each of two forked processes: data split check, then a short data-parallel training. One
    thread: a child forked after the parent ran OpenMP regions hangs in its first multi-threaded one."""
    torch.set_num_threads(1)
    AcceleratorState._reset_state(True)
    PartialState._reset_state()
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    stream = image_dataset(16).remove_columns("image").to_iterable_dataset(num_shards=4)
    loader = train_dataloader(stream, lambda ex: torch.tensor([e["id"] for e in ex]), 2, accelerator, seed=0)
    ids = torch.cat(list(loader))
    torch.save(ids, os.path.join(output_dir, f"ids_{accelerator.process_index}.pt"))
    args = _args(os.path.join(output_dir, "run"), "--max_train_steps", 2, "--shuffle_buffer_size", 0)
    explainer = train(*args, **_inputs(_splits(streaming=True)))
    weights = {k: v for k, v in explainer.state_dict().items() if k.startswith("decoder.")}
    torch.save(weights, os.path.join(output_dir, f"weights_{accelerator.process_index}.pt"))


@pytest.mark.slow  # two interpreters launched by accelerate: the heaviest test
def test_two_processes_split_the_stream_and_hold_identical_weights(tmp_path):
    # debug_launcher forks, and forking a process whose OpenMP pool already runs can hang: launch the two
    # ranks from a fresh interpreter instead, with a time limit
    launch = (
        f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
        "from accelerate import debug_launcher; from test_training import _two_process_run; "
        f"debug_launcher(_two_process_run, args=({str(tmp_path)!r},), num_processes=2)"
    )
    subprocess.run([sys.executable, "-c", launch], check=True, timeout=600)
    ids = [torch.load(tmp_path / f"ids_{rank}.pt", weights_only=True).tolist() for rank in (0, 1)]
    assert sorted(ids[0] + ids[1]) == list(range(16)) and ids[0] and ids[1]
    weights = [torch.load(tmp_path / f"weights_{rank}.pt", weights_only=True) for rank in (0, 1)]
    initial = AHAExplainer.from_pretrained(tmp_path / "run").state_dict()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
        assert torch.equal(value, initial[name]), name


@pytest.mark.parametrize(
    "extra, processes, message",
    [
        (
            ("--total_train_batch_size", 10, "--gradient_accumulation_steps", 4),
            1,
            r"total_train_batch_size \(10\) must be divisible by num_processes \(1\) x gradient_accumulation_steps \(4\)",
        ),
        (("--total_train_batch_size", 12, "--gradient_accumulation_steps", 2), 4, r"by .* = 8"),
        (("--train_dir", "a", "--dataset_name", "b"), 1, "one data source"),
        (("--train_dir", "a", "--streaming"), 1, "--streaming reads Hub datasets"),
        (("--tau_end", 0), 1, "--tau_end must be > 0"),
        (("--validation_dir", "v"), 1, "--validation_dir needs --train_dir"),
    ],
)
def test_argument_errors(tmp_path, extra, processes, message):
    data, model, optimisation, run = _args(tmp_path, *extra)
    with pytest.raises(ValueError, match=message):
        check_arguments(data, model, optimisation, run)
        optimisation.per_process(processes)


def test_total_batch_size_sets_the_per_device_one(tmp_path):
    _, _, optimisation, _ = _args(tmp_path, "--total_train_batch_size", 32, "--gradient_accumulation_steps", 2)
    resolved = optimisation.per_process(4)
    assert (resolved.per_device_train_batch_size, resolved.per_device_eval_batch_size) == (4, 4)
    assert optimisation.per_device_train_batch_size == 2  # the caller's arguments are never changed


def test_train_from_python_takes_the_dataclasses_and_trains_as_the_flags_say(tmp_path):
    """The Python entry point as a user calls it: the four dataclasses built in Python, whose values are parsed by
    their declared types as flags are; the run is the one the same flags give, bit for bit."""
    run = RunArguments(output_dir=str(tmp_path / "python"), checkpointing_steps="2", push_to_hub="false")
    assert (run.checkpointing_steps, run.push_to_hub) == (2, False)
    arguments = (
        DataArguments(shuffle_buffer_size=0),
        ModelArguments(tau_end=0.5, explainer_config={"perturbation_batch_size": 8}),
        OptimisationArguments(
            max_train_steps=2, per_device_train_batch_size=2, learning_rate=3e-3, num_warmup_steps=0, seed=0
        ),
        run,
    )
    from_python = train(*arguments, **_inputs(_splits(False)))
    flags = (
        "--max_train_steps",
        2,
        "--shuffle_buffer_size",
        0,
        "--checkpointing_steps",
        2,
        "--tau_end",
        0.5,
        "--explainer_config",
        "perturbation_batch_size=8",
    )
    assert _args(tmp_path / "flags", *flags)[:3] == arguments[:3]
    from_flags = train(*_args(tmp_path / "flags", *flags), **_inputs(_splits(False)))
    assert from_python.config.tau_end == 0.5 and from_python.config.perturbation_batch_size == 8
    for (name, a), b in zip(from_python.state_dict().items(), from_flags.state_dict().values()):
        assert torch.equal(a, b), name
    recorded = [json.loads((tmp_path / name / "aha_training_args.json").read_text()) for name in ("python", "flags")]
    assert recorded[0] == recorded[1]
    assert os.listdir(tmp_path / "python" / "checkpoints") == ["step_2"]

    with pytest.raises(ValueError, match="learning_rate must be a finite number, got nan"):
        OptimisationArguments(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="explainer_config image_mean: recorded from the classifier"):
        ModelArguments(explainer_config={"image_mean": [0, 0, 0]})
    with pytest.raises(TypeError, match=r"expected RunArguments \(aha.training.RunArguments\), got dict"):
        train(*arguments[:3], {"output_dir": str(tmp_path / "dict")}, **_inputs(_splits(False)))
    with pytest.raises(ValueError, match="--eval_steps must be >= 1, got 0"):
        train(*arguments[:3], RunArguments(output_dir=str(tmp_path / "zero"), eval_steps=0), **_inputs(_splits(False)))
    assert not os.path.exists(tmp_path / "zero")


def test_dataset_errors_come_before_training(tmp_path):
    splits = _splits(False)
    with pytest.raises(ValueError, match="no label column 'fine_label'"):
        train(*_args(tmp_path / "a", "--label_column_name", "fine_label"), **_inputs(splits))
    with pytest.raises(ValueError, match="no image column 'img'"):
        train(*_args(tmp_path / "b", "--image_column_name", "img"), **_inputs(splits))
    assert latest_checkpoint(tmp_path / "a") is None


def test_output_dir_holding_another_run_is_refused(tmp_path):
    (tmp_path / "aha_training_args.json").write_text(json.dumps({"learning_rate": 1.0}))
    (tmp_path / "checkpoints" / "step_1").mkdir(parents=True)  # the other run saved something
    with pytest.raises(ValueError, match=r"holds a different run \(.*learning_rate: 1.0 -> 0.003"):
        train(*_args(tmp_path), **_inputs(_splits(False)))
    (tmp_path / "aha_training_args.json").unlink()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no aha training run"):
        train(*_args(tmp_path), **_inputs(_splits(False)))


def _closed_form(step, warmup, total, start_factor=1 / 25):
    """The paper's schedule, written out: linear warm-up from lr/25, then cosine to 0 (and 0 after the end)."""
    if step < warmup:
        return start_factor + (1 - start_factor) * step / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


@pytest.mark.parametrize("warmup, total", [(6, 100), (0, 12), (3, 4), (60, 1000), (5, 5)])
def test_schedule_warms_up_from_lr_over_25_then_decays_to_zero(warmup, total):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    schedule = warmup_cosine_schedule(optimizer, warmup, total)
    rates = []
    for _ in range(total + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [3e-4 * _closed_form(step, warmup, total) for step in range(total + 1)]
    assert rates == pytest.approx(expected, rel=1e-12, abs=1e-18)
    if warmup:
        assert rates[0] == pytest.approx(3e-4 / 25) and rates[warmup] == pytest.approx(3e-4)
    if warmup < total:
        assert rates[-1] == 0.0
    json.dumps(schedule.state_dict())  # checkpoints store it as JSON


def test_the_hub_token_reaches_no_file_tracker_or_log(tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG)  # every record the run logs, INFO included
    """The tensorboard tracker (tensorboardX, a dev dependency) stores the run's hyperparameters in its
    event file and in hparams.yml: the token must be in neither, nor in any other file or the output."""
    secret = "hf_SeCrEt0123456789"
    args = _args(
        tmp_path, "--max_train_steps", 1, "--hub_token", secret, "--with_tracking", "--report_to", "tensorboard"
    )
    train(*args, **_inputs(_splits(False)))
    files = [os.path.join(root, name) for root, _, names in os.walk(tmp_path) for name in names]
    assert any(name.endswith("hparams.yml") for name in files) and any("tfevents" in name for name in files)
    assert "learning_rate" in open(next(f for f in files if f.endswith("hparams.yml"))).read()
    for path in files:
        with open(path, "rb") as handle:
            assert secret.encode() not in handle.read(), path
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err + caplog.text


def test_a_run_that_fails_before_saving_does_not_lock_its_folder(tmp_path, monkeypatch):
    splits = _splits(False)
    with pytest.raises(ValueError, match="no label column 'fine_label'"):  # fails before training starts
        train(*_args(tmp_path, "--label_column_name", "fine_label"), **_inputs(splits))
    assert not os.path.exists(tmp_path / "aha_training_args.json")

    def crash(*args):
        raise _Crash

    monkeypatch.setattr(loop_module, "annealed_tau", crash)  # fails in its first step, after recording its args
    with pytest.raises(_Crash):
        train(*_args(tmp_path, "--max_train_steps", 1), **_inputs(splits))
    assert json.loads((tmp_path / "aha_training_args.json").read_text())["learning_rate"] == 0.003
    monkeypatch.undo()
    train(*_args(tmp_path, "--max_train_steps", 1, "--learning_rate", 1e-3), **_inputs(splits))
    assert json.loads((tmp_path / "aha_training_args.json").read_text())["learning_rate"] == 0.001
    with pytest.raises(ValueError, match=r"holds a different run \(learning_rate: 0.001 -> 0.003\)"):
        train(*_args(tmp_path, "--max_train_steps", 1), **_inputs(splits))


def test_checkpoints_beyond_the_total_limit_are_rotated_out(tmp_path):
    args = _args(tmp_path, "--max_train_steps", 4, "--checkpointing_steps", 1, "--checkpoints_total_limit", 2)
    train(*args, **_inputs(_splits(False)))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["step_3", "step_4"]


def test_arguments_come_from_a_yaml_file_as_from_flags(tmp_path):
    (tmp_path / "run.yaml").write_text(
        f"output_dir: {tmp_path / 'out'}\nlearning_rate: 0.001\nexplainer_config:\n  - fusion_channels=8\n"
        "gradient_checkpointing: false\n"
    )
    from_file = build_parser().parse_args([str(tmp_path / "run.yaml")])
    from_flags = build_parser().parse_args(
        [
            "--output_dir",
            str(tmp_path / "out"),
            "--learning_rate",
            "0.001",
            "--explainer_config",
            "fusion_channels=8",
            "--no_gradient_checkpointing",
        ]
    )
    assert from_file == from_flags and from_file[1].explainer_config == [("fusion_channels", 8)]


def test_as_flags_gives_the_command_line_of_the_arguments_without_the_token(tmp_path):
    arguments = _args(
        tmp_path,
        "--no_gradient_checkpointing",
        "--push_to_hub",
        "--tau_start",
        1.5,
        "--explainer_config",
        'references=["mean", "blur"]',
        "--explainer_config",
        "second_class=false",
        "--hub_token",
        "hf_x",
        "--mixed_precision",
        "bf16",
        "--train_val_split",
        0.25,
    )
    flags = as_flags(*arguments)
    assert "hf_x" not in flags and "--hub_token" not in flags
    assert build_parser().parse_args(flags) == (*arguments[:3], dataclasses.replace(arguments[3], hub_token=None))
    assert "hf_x" not in repr(arguments)


def _nan_losses_at(monkeypatch, calls: set[int] | None) -> list[dict]:
    """Make the training loss NaN at the given forward calls with labels (all of them for None); returns the
    decoder's weights as each such call began."""
    original, snapshots = AHAExplainer.forward, []

    def forward(self, *args, **kwargs):
        if kwargs.get("labels") is None:
            return original(self, *args, **kwargs)
        snapshots.append({k: v.detach().clone() for k, v in self.decoder.state_dict().items()})
        output = original(self, *args, **kwargs)
        if calls is None or len(snapshots) in calls:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(AHAExplainer, "forward", forward)
    return snapshots


def test_a_step_with_non_finite_gradients_is_skipped(tmp_path, monkeypatch, caplog):
    snapshots = _nan_losses_at(monkeypatch, {2})
    with caplog.at_level(logging.WARNING):
        trained = train(*_args(tmp_path, "--max_train_steps", 3), **_inputs(_splits(False)))
    first, before_nan, after_nan = snapshots
    assert any(not torch.equal(first[k], before_nan[k]) for k in first)  # step 1 updated the decoder
    assert all(torch.equal(before_nan[k], after_nan[k]) for k in first)  # step 2 (NaN) left it as it was
    assert all(torch.isfinite(p).all() for p in trained.decoder.parameters())
    assert "step 2: the gradients are not finite; this update is skipped" in caplog.text


def test_training_that_keeps_diverging_stops_with_an_error(tmp_path, monkeypatch):
    _nan_losses_at(monkeypatch, None)
    with pytest.raises(RuntimeError, match="training diverged: the gradients were not finite at 10 steps in a row"):
        train(*_args(tmp_path, "--max_train_steps", 12), **_inputs(_splits(False)))
