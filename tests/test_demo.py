"""aha demo: the report's numbers (paired differences, verdicts) and the command run end to end."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from aha.demo.evaluation import METRICS, MethodResult, paired_difference, verdict
from aha.demo.report import markdown, summarise


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
    table = markdown(summary, {key: key for key in ("title", "command", "classifier", "explainer", "evaluation", "machine",
                                                    "versions", "run_time")})
    # better (bold) where low is good, worse (italics) where high is good
    assert "| Worse |" in table and "| **-0.050 ± 0.000** |" in table and "| *-0.050 ± 0.000* |" in table


@pytest.mark.slow
def test_quick_demo_writes_a_complete_report(tmp_path):
    output = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "aha", "demo", "--quick", "--output", str(output)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for name in ("results.md", "results.json", "deletion_curves.png", "insertion_curves.png", "overlays.png"):
        assert (output / name).is_file(), name
    report = json.loads((output / "results.json").read_text())
    methods = report["methods"]
    expected = {"AHA", "AHA + 2 refine", "Random", "Centre", "Rollout", "Chefer", "Grad-CAM", "IG", "Occlusion", "RISE"}
    assert set(methods) == expected
    for method in methods.values():
        values = [m[key] for m in method["metrics"].values() for key in ("mean", "se")]
        assert np.isfinite(values).all() and method["ms_per_image"] > 0
    assert set(report["paired"]["AHA"]) == expected - {"AHA"}
    assert "| RISE |" in (output / "results.md").read_text()
    # a second run reuses the cached data, classifier and explainer and only re-evaluates
    again = subprocess.run([sys.executable, "-m", "aha", "demo", "--quick", "--output", str(output)],
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and again.stdout.count("[aha demo] reusing") == 3
