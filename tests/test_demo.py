"""aha demo: the report's numbers (paired differences, verdicts) and the command run end to end."""

import json
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from conftest import images_forwarded

from aha.demo import PRESET_CPU_MINUTES, build_parser, chance_note, duration_note
from aha.demo.method_comparison import METRICS, MethodResult, paired_difference, score_maps, verdict
from aha.demo.report import macro_summary, markdown, read_scores, summarise, write_scores
from aha.demo.worlds import WORLDS
from aha.metrics import independent_scores


def result(name, shift, seconds=0.01, n=50):
    generator = torch.Generator().manual_seed(0)  # the same images: the same per-image noise for every method
    base = torch.rand(n, generator=generator, dtype=torch.float64)
    scores = dict.fromkeys(METRICS, base + shift)
    return MethodResult(name, scores, {}, seconds, torch.zeros(n, 4, 4))


def test_paired_differences_and_verdicts():
    a, b = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.2, 0.25, 0.45, 0.5])
    difference, se = paired_difference(a, b)
    assert difference == pytest.approx(-0.1)
    assert se == pytest.approx(torch.tensor([-0.1, -0.05, -0.15, -0.1]).double().std().item() / 2)
    assert verdict(-0.1, 0.01, high_is_good=False) == "better" and verdict(-0.1, 0.01, high_is_good=True) == "worse"
    assert verdict(0.1, 0.06, high_is_good=True) == "tie"  # within two standard errors
    assert verdict(math.nan, 0.01, high_is_good=True) == "tie"


def test_summary_pairs_every_method_on_the_same_images():
    results = [result("AHA", 0.0, seconds=0.002), result("Worse", 0.05), result("Same", 0.0)]
    summary = summarise(results, forward_seconds=0.001, compared=["AHA"])
    assert summary["methods"]["AHA"]["cost_in_forwards"] == pytest.approx(2.0)
    worse = summary["paired"]["AHA"]["Worse"]
    for metric, definition in METRICS.items():
        high_is_good = definition.high_is_good
        # a constant per-image shift: standard error 0, so any difference is decisive
        assert worse[metric]["difference"] == pytest.approx(-0.05)
        assert worse[metric]["verdict"] == ("worse" if high_is_good else "better")
        assert summary["paired"]["AHA"]["Same"][metric]["verdict"] == "tie"
    table = markdown(
        summary,
        {
            key: key
            for key in ("title", "command", "classifier", "explainer", "evaluation", "machine", "versions", "run_time")
        },
    )
    # better (bold) where low is good, worse (italics) where high is good
    assert "| Worse |" in table and "| **-0.050 ± 0.000** |" in table and "| *-0.050 ± 0.000* |" in table


def test_the_reports_region_perturbation_and_selectivity_columns_trace_the_patch_curves_once(vit, images, maps):
    columns = {name: METRICS[name] for name in ("region_perturbation", "selectivity")}
    forwarded = images_forwarded(vit)
    together, _ = score_maps(vit, images, None, None, maps, image_processor=None, metrics=columns)
    forwarded_together = sum(forwarded)
    forwarded.clear()
    for name in columns:
        alone = independent_scores(vit, images, maps, metrics=[name], chunk_size=128)[name]
        assert torch.equal(together[name], alone.double()), name
    assert 2 * forwarded_together == sum(forwarded)


def test_macro_summary_is_the_mean_over_worlds_of_each_worlds_means():
    by_world = {"a": [result("AHA", 0.0), result("RISE", 0.1)], "b": [result("AHA", 0.2), result("RISE", 0.2)]}
    macro = macro_summary(by_world, {"a": 0.001, "b": 0.003}, compared=["AHA"])
    for metric in METRICS:
        for name in ("AHA", "RISE"):
            per_world = [macro["per_world"][world][name][metric] for world in by_world]
            assert macro["methods"][name]["metrics"][metric]["mean"] == pytest.approx(np.mean(per_world))
        # paired over the pooled images: AHA - RISE is -0.1 on world a, 0 on world b
        assert macro["paired"]["AHA"]["RISE"][metric]["difference"] == pytest.approx(-0.05)
    assert macro["forward_ms_per_image"] == pytest.approx(2.0)
    text = markdown(macro, {"title": "macro", "command": "aha demo --world all"})
    assert "### a" in text and "### b" in text and "## Paired differences: AHA minus each method" in text
    with pytest.raises(ValueError, match="same methods on as many images"):
        macro_summary({"a": [result("AHA", 0.0, n=50)], "b": [result("AHA", 0.0, n=40)]}, {"a": 1, "b": 1}, ["AHA"])


def test_the_macro_table_read_back_from_each_worlds_score_file_is_the_one_built_in_memory(tmp_path):
    by_world = {
        "a": [result("AHA", 0.0, seconds=0.02), result("RISE + 2", 0.1, seconds=1.5)],
        "b": [result("AHA", 0.2), result("RISE + 2", 0.2, seconds=2.0)],
    }
    forward = {"a": 0.001, "b": 0.003}
    read = {}
    for world, results in by_world.items():
        write_scores(tmp_path / world, results, forward[world])
        read[world], seconds = read_scores(tmp_path / world)
        assert seconds == forward[world] and [r.name for r in read[world]] == ["AHA", "RISE + 2"]
        for stored, original in zip(read[world], results):
            assert stored.seconds_per_image == original.seconds_per_image
            assert all(torch.equal(stored.scores[m], original.scores[m]) for m in METRICS)
    assert macro_summary(read, forward, ["AHA"]) == macro_summary(by_world, forward, ["AHA"])


def test_jobs_is_checked_a_linked_log_is_refused_and_a_failed_world_names_its_log(tmp_path):
    def demo_all(jobs: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "aha", "demo", "--world", "all", "--jobs", jobs, "--output", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=600)

    refused = demo_all("0")
    assert refused.returncode == 1 and "--jobs must be an integer >= 1, got 0" in refused.stderr
    outside = tmp_path.parent / f"{tmp_path.name}-outside.log"
    outside.write_text("kept")
    (tmp_path / "demo-letters.log").symlink_to(outside)
    linked = demo_all("2")
    assert linked.returncode == 1 and "demo-letters.log is a symbolic link" in linked.stderr
    assert outside.read_text() == "kept" and not (tmp_path / "demo-shapes.log").exists()  # nothing started
    (tmp_path / "demo-letters.log").unlink()
    for world in WORLDS:  # a file where each world's folder goes: every world's own process fails at once
        (tmp_path / world).write_text("not a folder")
    run = demo_all("3")
    logs = ", ".join(str(tmp_path / f"demo-{world}.log") for world in WORLDS)
    assert run.returncode == 1 and f"{', '.join(WORLDS)} failed: see {logs}" in run.stderr, run.stderr[-2000:]
    assert "3 worlds, 3 at a time, each process with" in run.stdout and "letters: FAILED (exit 1)" in run.stdout
    assert "aha demo: error:" in (tmp_path / "demo-parts.log").read_text()
    assert not (tmp_path / "macro.md").exists()


def test_a_classifier_near_chance_is_called_a_smoke_run():
    assert chance_note(0.23, 5).startswith(
        "SMOKE RUN: this classifier is near chance (test accuracy 0.230, chance 0.200)"
    )
    assert chance_note(0.51, 5) is None and chance_note(0.34, 6) is None and chance_note(0.33, 6) is not None


def test_the_first_line_says_how_long_each_preset_takes_and_whether_it_was_timed():
    quick, per_epoch_scale, _ = PRESET_CPU_MINUTES["quick"]
    letters = quick + 2 * per_epoch_scale  # AHA Letters' classifier trains 3 times AHA Shapes' epochs
    assert duration_note("quick", ["shapes", "letters"]).startswith(
        f"about {quick + letters} CPU minutes (timed; shapes {quick}, letters {letters};"
    )
    assert duration_note("default", ["shapes"]).startswith("about 49 CPU minutes (timed on each world; shapes 49;")
    assert duration_note("default", list(WORLDS)).startswith("about 3.0 CPU hours (timed on each world; shapes 49, ")
    assert duration_note("full", ["parts"]).startswith("about 3.1 CPU hours (estimated; parts 186;")


def test_the_world_flag_is_parsed_strictly():
    run = subprocess.run(
        [sys.executable, "-m", "aha", "demo", "--world", "digits"], capture_output=True, text=True, timeout=300
    )
    assert (
        run.returncode == 2
        and "invalid choice: 'digits'" in run.stderr
        and "'shapes', 'letters', 'parts', 'all'" in run.stderr
    )
    assert build_parser().parse_args([]).world == "shapes"  # the README's `aha demo` is AHA Shapes


def finite_report(report: dict, expected: set) -> None:
    assert set(report["methods"]) == expected and set(report["paired"]["AHA"]) == expected - {"AHA"}
    for method in report["methods"].values():
        values = [m[key] for m in method["metrics"].values() for key in ("mean", "se")]
        assert set(method["metrics"]) == set(METRICS) and np.isfinite(values).all() and method["ms_per_image"] > 0


@pytest.mark.slow
def test_quick_demo_on_every_world_writes_each_report_and_the_macro_table(tmp_path):
    output = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "aha", "demo", "--world", "all", "--quick", "--jobs", "2", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    first, second = run.stdout.splitlines()[:2]
    assert second.startswith("[aha demo] 3 worlds, 2 at a time, each process with ")
    assert "quick preset, a smoke run" in first and str(output / "letters" / "results.md") in first
    assert first.startswith(f"[aha demo] {duration_note('quick', list(WORLDS))}")
    assert str(output / "macro.md") in first
    expected = {
        "AHA",
        "AHA + 2 refine",
        "Random",
        "Centre",
        "Rollout",
        "Chefer",
        "Grad-CAM",
        "IG",
        "Occlusion",
        "RISE",
    }
    for world in WORLDS:
        for name in (
            "results.md",
            "results.json",
            "deletion_curves.png",
            "insertion_curves.png",
            "overlays.png",
            "data/README.md",
            "scores.safetensors",
        ):
            assert (output / world / name).is_file(), (world, name)
        assert (
            f"[aha demo] {world} report: {output / world / 'results.md'}" in (output / f"demo-{world}.log").read_text()
        )
        report = json.loads((output / world / "results.json").read_text())
        finite_report(report, expected)
        text = (output / world / "results.md").read_text()
        assert report["context"]["world"] == world and "quick preset, a smoke run" in text
        accuracy = float(report["context"]["classifier"].split("test accuracy ")[1].split()[0])
        # a classifier under twice chance is called a smoke run in its report
        assert ("SMOKE RUN: this classifier is near chance" in text) == (accuracy < 2 / len(WORLDS[world].class_names))
    macro = json.loads((output / "macro.json").read_text())
    finite_report(macro, expected)
    assert list(macro["per_world"]) == list(WORLDS)
    assert "| RISE |" in (output / "macro.md").read_text()
    # a second run reuses the cached data, classifier and explainer and goes straight to the evaluation (stopped
    # there: the evaluation is the first run's, already checked); the interrupted run leaves the reports whole
    report = (output / "shapes" / "results.json").read_bytes()
    again = subprocess.Popen(
        [sys.executable, "-m", "aha", "demo", "--quick", "--output", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    watchdog = threading.Timer(900, again.kill)  # a hung run ends the loop below (at EOF) instead of the CI job
    watchdog.start()
    try:
        lines = []
        for line in again.stdout:
            lines.append(line)
            if line.startswith("[aha demo] evaluating"):
                break
    finally:
        watchdog.cancel()
        again.kill()
        again.wait(timeout=60)
    printed = "".join(lines)
    assert printed.count("[aha demo] reusing") == 3 and "[aha demo] training" not in printed
    assert "[aha demo] drawing" not in printed
    assert lines[-1].startswith("[aha demo] evaluating 10 methods on 16 held-out test images")
    assert (output / "shapes" / "results.json").read_bytes() == report


def test_per_pixel_patch_targets_take_the_largest_class_of_a_quarter_or_more():
    from aha.demo.classifier import patch_targets, pixel_patch_targets

    pixels = torch.full((1, 16, 16), -1)
    pixels[0, :6, :8] = 2  # 48 of the top-left patch's 64 pixels
    pixels[0, 6:, :8] = 0  # and 16 of it, 32 of the bottom-left one
    pixels[0, :8, 8:11] = 1  # 24 of the top-right: at least a quarter
    pixels[0, 8:, 8:9] = 1  # 8 of the bottom-right: less than a quarter
    assert pixel_patch_targets(pixels, 3, 8).tolist() == [[2, 1, 0, 3]]
    masks = torch.rand(4, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3
    labels = torch.tensor([0, 2, 1, 2])  # one class per image on its mask: the image-label targets
    one_class = torch.where(masks, labels[:, None, None], -1)
    assert torch.equal(pixel_patch_targets(one_class, 3, 8), patch_targets(masks, labels, 8, background=3))


def test_per_pixel_patch_evidence_of_the_image_label_trains_the_same_classifier():
    from aha.demo.classifier import classifier_config, image_processor_for, train_classifier

    world = WORLDS["parts"]
    split = world.split("train", 32, size=16)
    processor = image_processor_for(split, 16)
    config = classifier_config(world.class_names, image_size=16, hidden_size=16, num_layers=1)
    masks = np.stack([np.asarray(mask, dtype=bool) for mask in split["mask"]])
    label_on_mask = np.where(masks, np.array(split["label"])[:, None, None], -1)
    train = dict(epochs=1, batch_size=16, seed=0, progress=False)
    default = train_classifier(split, processor, config, **train)
    same = train_classifier(split, processor, config, patch_evidence=(label_on_mask, len(world.class_names)), **train)
    kinds = train_classifier(split, processor, config, patch_evidence=world.patch_evidence(split), **train)
    weights = [torch.cat([p.flatten() for p in model.parameters()]) for model in (default, same, kinds)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    with pytest.raises(ValueError, match="patch_evidence must be per-pixel classes of shape"):
        train_classifier(split, processor, config, patch_evidence=(label_on_mask[:, :8], 6), **train)


def test_a_changed_library_default_trains_the_cached_explainer_again(tmp_path, monkeypatch):
    from aha.demo import cached, explainer_defaults
    from aha.modeling.configuration_aha import AHAConfig

    builds = []
    settings = {"command": ["--seed", "0"], "library_defaults": explainer_defaults()}
    for _ in range(2):  # the record, written as JSON and read back, equals the settings: the second call reuses it
        cached(tmp_path, settings, lambda folder: builds.append(1) or {})
    assert len(builds) == 1
    own_fields = AHAConfig.own_fields()
    monkeypatch.setattr(AHAConfig, "own_fields", classmethod(lambda cls: {**own_fields, "guide_blur_sigma": 0.0}))
    changed = {**settings, "library_defaults": explainer_defaults()}
    assert changed["library_defaults"]["AHAConfig"]["guide_blur_sigma"] == 0.0
    cached(tmp_path, changed, lambda folder: builds.append(1) or {})
    assert len(builds) == 2
