"""benchmarks/gpu_suite.py runs end to end (its --smoke mode: CPU, the tiny ViT) and writes its JSON and markdown."""

import json
import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def test_gpu_suite_smoke_run_writes_every_section(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--smoke", "--output_dir", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    result = json.loads((tmp_path / "gpu_suite_smoke.json").read_text())
    training = result["training"]
    assert [(row["checkpointing"], "backend" in row) for row in training] == [
        (False, False),
        (True, False),
        (training[2]["checkpointing"], True),
    ]
    assert all(not row["out_of_memory"] and row["images_per_second"] > 0 for row in training)
    assert [row["batch_size"] for row in result["explain"]] == [1, 2, 4]
    assert (
        all(row["images_per_second"] > 0 for row in result["explain"]) and result["metrics"]["images_per_second"] > 0
    )
    projection = result["projection"]
    assert projection["hours_8_gpus_linear"] == projection["hours_1_gpu"] / 8 > 0
    assert "One ImageNet-1k epoch (1,281,167 images)" in (tmp_path / "gpu_suite_smoke.md").read_text()
