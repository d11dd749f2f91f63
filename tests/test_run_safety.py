"""A run writes only inside its output folder, through one atomic writer, and reads every option by its declared type."""

import json
import os
import re
from types import SimpleNamespace

import pytest
import yaml
from conftest import make_classifier
from test_cli import _image_folder, run_aha
from training_helpers import image_dataset, processor, sharp_classifier, train_argv

from aha.persistence.atomic_writer import SymlinkError, atomic_path, make_folder, staged_folder, write_json
from aha.training import build_parser, train
from aha.training.arguments import argument_hints


# every file a run writes at the top of its output folder
RUN_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "aha_training_args.json")
BOOLEAN_OPTIONS = sorted(name for name, hint in argument_hints().items() if hint is bool)


def _run(output_dir, *extra):
    args = build_parser().parse_args(
        train_argv(output_dir, "--max_train_steps", 2, "--checkpointing_steps", 1, *extra)
    )
    return train(
        *args,
        classifier=make_classifier("vit"),
        image_processor=processor(),
        splits={"train": image_dataset(8).remove_columns("id")},
    )


def test_a_resumed_run_replaces_links_planted_at_its_file_names_and_never_writes_through_them(tmp_path):
    out = tmp_path / "out"
    _run(out)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in RUN_FILES:
        # the run's own arguments are read before the resume: the planted copy must read as this run's
        content = (out / name).read_bytes() if name == "aha_training_args.json" else b"a user's file\n"
        (outside / name).write_bytes(content)
        os.remove(out / name)
        os.symlink(outside / name, out / name)
    _run(out, "--resume_from_checkpoint", "latest")
    for name in RUN_FILES:
        expected = b"a user's file\n" if name != "aha_training_args.json" else (outside / name).read_bytes()
        assert (outside / name).read_bytes() == expected, name
        assert not os.path.islink(out / name) and os.path.getsize(out / name) > 0, name
    assert not [name for name in os.listdir(out) if name.startswith(".")], "a temporary file was left behind"


def test_a_link_in_place_of_the_checkpoints_folder_is_refused_before_anything_is_written(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    _run(out)
    os.rename(out / "checkpoints", outside)
    os.symlink(outside, out / "checkpoints")
    before = sorted(os.listdir(outside))
    with pytest.raises(SymlinkError, match="checkpoints is a symbolic link"):
        _run(out, "--resume_from_checkpoint", "latest")
    assert sorted(os.listdir(outside)) == before


def test_atomic_path_leaves_the_destination_untouched_when_the_writer_fails(tmp_path):
    path = tmp_path / "state.json"
    write_json(str(path), {"step": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(str(path)) as temporary:
            with open(temporary, "w") as handle:
                handle.write("{half a fi")
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"step": 1} and os.listdir(tmp_path) == ["state.json"]


def test_make_folder_refuses_a_link_between_the_root_and_the_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root_link")
    assert make_folder(str(tmp_path / "root_link" / "a"), root=str(tmp_path / "root_link"))  # the root may be a link
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "sub")
    with pytest.raises(SymlinkError, match="sub is a symbolic link"):
        make_folder(str(tmp_path / "root" / "sub" / "step_1"), root=str(tmp_path / "root"))


def test_staged_folder_moves_files_in_and_removes_shards_of_an_earlier_save(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_text("old shard")
    (tmp_path / "notes.txt").write_text("kept")
    with staged_folder(str(tmp_path)) as staging:
        with open(os.path.join(staging, "model.safetensors"), "w") as handle:
            handle.write("new")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "notes.txt"]


# ------------------------------------------------------------------------------------------------ option types
def _options(arguments) -> SimpleNamespace:
    """Every option of the four dataclasses ``aha train`` parsed, by name."""
    return SimpleNamespace(**{name: value for instance in arguments for name, value in vars(instance).items()})


def _from_file(tmp_path, suffix, values):
    path = tmp_path / f"run{suffix}"
    path.write_text(json.dumps(values) if suffix == ".json" else yaml.safe_dump(values))
    return _options(build_parser().parse_args([str(path)]))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize("value", ["false", "no", "False", 0, "0", False])
def test_every_boolean_option_reads_false_values_as_false_in_json_and_yaml(tmp_path, suffix, value):
    args = _from_file(tmp_path, suffix, {"output_dir": "out", **dict.fromkeys(BOOLEAN_OPTIONS, value)})
    assert {name: getattr(args, name) for name in BOOLEAN_OPTIONS} == dict.fromkeys(BOOLEAN_OPTIONS, False)


@pytest.mark.parametrize("value", ["true", "yes", 1, "1", True])
def test_true_values_read_as_true(tmp_path, value):
    assert _from_file(tmp_path, ".yaml", {"output_dir": "out", "push_to_hub": value}).push_to_hub is True


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(
    "values, message",
    [
        ({"push_to_hub": "maybe"}, "push_to_hub must be a boolean"),
        ({"overwrite_output_dir": 2}, "overwrite_output_dir must be a boolean"),
        ({"max_train_steps": 2.5}, "max_train_steps must be an integer"),
        ({"learning_rate": "fast"}, "learning_rate must be a finite number"),
        ({"learning_rate": ".nan"}, "learning_rate must be a finite number"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"hub_model_id": ["a"]}, "hub_model_id must be a string"),
        ({"no_such_option": 1}, r"unknown option\(s\) \['no_such_option'\]"),
        ({"explainer_config": {"second_class": "perhaps"}}, "explainer_config second_class must be a boolean"),
        ({"explainer_config": {"includes_classifier": False}}, "includes_classifier: recorded from the classifier"),
        ({"explainer_config": {"classifier_name_or_path": "org/other"}}, "classifier_name_or_path: recorded"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_option_and_the_file(
    tmp_path, capsys, suffix, values, message
):
    with pytest.raises(SystemExit) as exit_:
        _from_file(tmp_path, suffix, {"output_dir": "out", **values})
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and f"run{suffix}" in error and re.search(message, error), error


def test_yaml_strings_become_the_numbers_their_options_declare(tmp_path):
    args = _from_file(
        tmp_path,
        ".yaml",
        {
            "output_dir": "out",
            "learning_rate": "1e-3",
            "max_train_steps": "7",
            "explainer_config": {"peak_weight": "1e-3", "num_fractions": "6"},
        },
    )
    assert (args.learning_rate, args.max_train_steps) == (1e-3, 7)
    assert dict(args.explainer_config) == {"peak_weight": 1e-3, "num_fractions": 6}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning_rate", "nan"], "learning_rate must be a finite number"),
        (["--weight_decay", "inf"], "weight_decay must be a finite number"),
        (["--explainer_config", "second_class=maybe"], "second_class must be a boolean"),
        (["--explainer_config", "image_mean=[0,0,0]"], "image_mean: recorded from the classifier"),
    ],
)
def test_flags_get_the_same_rules(capsys, flags, message):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--output_dir", "out", *flags])
    assert message in capsys.readouterr().err


def test_flags_and_files_give_the_same_arguments(tmp_path):
    flags = _options(
        build_parser().parse_args(
            [
                "--output_dir",
                "out",
                "--push_to_hub",
                "false",
                "--explainer_config",
                "second_class=no",
                "--explainer_config",
                'references=["mean"]',
            ]
        )
    )
    from_file = _from_file(
        tmp_path,
        ".yaml",
        {"output_dir": "out", "push_to_hub": "false", "explainer_config": ["second_class=no", 'references=["mean"]']},
    )
    assert vars(flags) == vars(from_file) and flags.explainer_config == [
        ("second_class", False),
        ("references", ["mean"]),
    ]


def test_aha_train_with_overwrite_false_in_yaml_keeps_the_finished_run_and_a_users_file(tmp_path):
    """The data loss of issue 19 as a user met it: ``overwrite_output_dir: "false"`` deleted a finished run."""
    sharp_classifier().save_pretrained(tmp_path / "classifier")
    processor().save_pretrained(tmp_path / "classifier")
    _image_folder(tmp_path / "train", per_class=2, seed=0)
    settings = {
        "model_name_or_path": str(tmp_path / "classifier"),
        "train_dir": str(tmp_path / "train"),
        "output_dir": str(tmp_path / "out"),
        "max_train_steps": 1,
        "per_device_train_batch_size": 3,
        "push_to_hub": "false",
        "overwrite_output_dir": "false",
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(settings))
    first = run_aha("train", tmp_path / "run.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    (tmp_path / "out" / "notes.txt").write_text("a user's file")
    before = sorted(os.listdir(tmp_path / "out"))
    again = run_aha("train", tmp_path / "run.yaml")
    assert again.returncode != 0 and "--resume_from_checkpoint latest" in again.stderr
    assert sorted(os.listdir(tmp_path / "out")) == before and "step_1" in os.listdir(tmp_path / "out" / "checkpoints")


def test_aha_explain_replaces_a_link_planted_at_an_output_name_and_refuses_a_linked_subfolder(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from aha.explain import write_outputs

    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "user.png").write_bytes(b"a user's file")
    os.symlink(outside / "user.png", out / "cat_overlay.png")
    result = {
        "overlay": Image.new("RGB", (4, 4)),
        "attribution": np.zeros((4, 4), np.float32),
        "predictions": [],
        "target_label": "cat",
        "target": 0,
        "target_score": 0.5,
        "deletion": type("Curve", (), {"mean_auc": 0.1}),
        "insertion": type("Curve", (), {"mean_auc": 0.9}),
    }
    write_outputs("cat.png", str(out), "cat", result, curves=False)
    assert (outside / "user.png").read_bytes() == b"a user's file" and not os.path.islink(out / "cat_overlay.png")
    assert np.load(out / "cat_map.npy").shape == (4, 4) and Image.open(out / "cat_overlay.png").size == (4, 4)
    os.symlink(outside, out / "photos")
    with pytest.raises(SymlinkError, match="photos is a symbolic link"):
        write_outputs("photos/dog.png", str(out), "photos/dog", result, curves=False)
    assert sorted(os.listdir(outside)) == ["user.png"]


# ------------------------------------------------------------------------------------------------ sizes and files
def test_sizes_that_would_only_reach_the_allocator_are_refused_naming_the_option(tmp_path):
    from aha import AHAConfig
    from aha.ranking.objectives import MAX_GRID_SIDE, check_grid
    from aha.ranking.refinement import RefinementPlan

    with pytest.raises(ValueError, match="num_fractions must be an integer >= 3 and <= 256"):
        AHAConfig(num_fractions=10**9)
    with pytest.raises(ValueError, match="num_fractions must be an integer >= 3 and <= 256"):
        RefinementPlan(num_fractions=100_000)
    with pytest.raises(ValueError, match=f"in \\[2, {MAX_GRID_SIDE}\\].*raise grid_cell_patches"):
        check_grid(1400)  # grid_cell_patches=[0.01, 2] at 224 px / 16 px patches


def test_json_nested_past_the_recursion_limit_is_reported_as_the_damaged_file_it_is(tmp_path):
    from aha.persistence.safe_readers import DamagedFileError, read_json

    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DamagedFileError, match=r"config.json is not a readable JSON file \(nested too deeply\)"):
        read_json(str(tmp_path / "config.json"))
