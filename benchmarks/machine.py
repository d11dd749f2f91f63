"""What a benchmark ran on, recorded next to its numbers: versions, processor or GPU, threads and load."""

from __future__ import annotations

import datetime
import os
import platform

import torch
import transformers


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def describe() -> dict:
    """Versions, machine and the load average now (the 1, 5 and 15 minute figures of ``os.getloadavg``)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": _cpu_name(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def summary(info: dict) -> str:
    """One line for a results section."""
    device = info["gpu"] or f"{info['cpu']}, {info['logical_cores']} logical cores"
    return (
        f"{device}; torch {info['torch']}, transformers {info['transformers']}, Python {info['python']}; "
        f"{info['torch_threads']} torch thread(s); load average {info['load_average']} ({info['date']})"
    )
