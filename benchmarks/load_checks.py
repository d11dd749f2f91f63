"""CPU time of the checks `AHAExplainer.from_pretrained` runs on what it loads, next to the whole load.

    python benchmarks/load_checks.py [--models vit-b16-224px] [--repeats 5]

For each benchmark ViT (benchmarks/models.py; random init from configs: the cost, not the weights, is measured) a
self-contained explainer with its image processor is saved to a temporary folder, then, in interleaved rounds, this
process's CPU time (``time.process_time``, on ``--threads`` threads: the machines this runs on are shared) is taken
for: the whole ``from_pretrained``; the classifier's weights fingerprint (checked before the checks below existed);
the NaN/infinity check of every weight (``check_finite_weights``); the fingerprints of everything else that decides a
map (``saved_fingerprints``: the explainer's own weights, both configs, the processor's settings); reading
config.json and preprocessor_config.json for ``auto_map`` (``read_model_json``). Medians over the rounds. Results:
``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers as T
from machine import describe, summary
from models import VIT_CONFIGS, build_vit

from aha import AHAExplainer
from aha.persistence.atomic_writer import write_text
from aha.persistence.explainer_saving import own_weights
from aha.persistence.fingerprints import saved_fingerprints, weights_fingerprint
from aha.persistence.strict_loading import check_finite_weights, read_model_json


HERE = Path(__file__).parent


def measure(name: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        size = VIT_CONFIGS[name]["image_size"]
        processor = T.ViTImageProcessorPil(size={"height": size, "width": size})
        AHAExplainer.from_classifier(build_vit(name), image_processor=processor).save_pretrained(folder)
        explainer = AHAExplainer.from_pretrained(folder)  # warm-up: file cache, lazy imports
        stored, _ = read_model_json(folder, "config.json")
        settings, _ = read_model_json(folder, "preprocessor_config.json")
        parts = {
            "from_pretrained": lambda: AHAExplainer.from_pretrained(folder),
            "classifier_fingerprint": lambda: weights_fingerprint(explainer.classifier),
            "finite_weights": lambda: check_finite_weights(explainer, folder),
            "saved_fingerprints": lambda: saved_fingerprints(own_weights(explainer.state_dict()), stored, settings),
            "auto_map_reads": lambda: (
                read_model_json(folder, "config.json"),
                read_model_json(folder, "preprocessor_config.json"),
            ),
        }
        seconds = {key: [] for key in parts}
        for _ in range(repeats):
            for key, run in parts.items():
                start = time.process_time()
                run()
                seconds[key].append(time.process_time() - start)
    medians = {key: statistics.median(values) for key, values in seconds.items()}
    added = medians["finite_weights"] + medians["saved_fingerprints"] + medians["auto_map_reads"]
    return {
        "model": name,
        "parameters": sum(p.numel() for p in explainer.parameters()),
        "median_seconds": medians,
        "added_checks_seconds": added,
        "added_fraction_of_load": added / medians["from_pretrained"],
        "seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["vit-s16-224px", "vit-b16-224px"], choices=sorted(VIT_CONFIGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is least sensitive to a shared CPU)")
    parser.add_argument("--output", default=str(HERE / "results" / "load_checks.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    before = describe()
    rows = [measure(name, args.repeats) for name in args.models]
    after = describe()
    print(summary(before), f"-> load average after: {after['load_average']}")
    print(f"{args.repeats} interleaved rounds, median CPU seconds")
    print(
        "| model | from_pretrained | classifier fingerprint | finite weights | other fingerprints | auto_map reads "
        "| added checks / load |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        m = row["median_seconds"]
        print(
            f"| {row['model']} | {m['from_pretrained']:.3f} | {m['classifier_fingerprint']:.3f} | "
            f"{m['finite_weights']:.3f} | {m['saved_fingerprints']:.4f} | {m['auto_map_reads']:.4f} | "
            f"{100 * row['added_fraction_of_load']:.1f}% |"
        )
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(
        output,
        json.dumps(
            {
                "command": shlex.join(["python", "benchmarks/load_checks.py", *sys.argv[1:]]),
                "machine": before,
                "load_average_after": after["load_average"],
                "rows": rows,
            },
            indent=1,
        ),
    )


if __name__ == "__main__":
    main()
