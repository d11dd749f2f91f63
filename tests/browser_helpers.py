"""The web demo as a visitor meets it: ``python spaces/aha-explain/app.py`` started on 127.0.0.1 in a subprocess,
and Debian's chromium (``apt-get install chromium``; never a downloaded browser) driven by Playwright.

Used by the browser tests and by ``docs/space_screenshot.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path


APP = Path(__file__).resolve().parents[1] / "spaces" / "aha-explain" / "app.py"
CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless and a fresh temporary profile (--user-data-dir) to every launch; these keep a
# root, offline machine's chromium from reaching for the network or a sandbox it cannot have
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
READY = "Running on local URL"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running app: its ``url``, its ``process`` and every line it printed so far (``output()``)."""

    def __init__(self, process: subprocess.Popen, url: str):
        self.process, self.url, self.lines = process, url, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_ready(self, timeout: float) -> float:
        """Seconds until the app served its page; an AssertionError with its output if it died or took too long."""
        start = time.monotonic()
        while not any(READY in line for line in self.lines):
            if self.process.poll() is not None:
                raise AssertionError(f"the app exited with code {self.process.returncode}:\n{self.output()[-4000:]}")
            if time.monotonic() - start > timeout:
                raise AssertionError(f"the app did not serve within {timeout} s:\n{self.output()[-4000:]}")
            time.sleep(0.1)
        return time.monotonic() - start


@contextmanager
def serving(*arguments, timeout: float = 120, cwd=None):
    """``python app.py ARGUMENTS --host 127.0.0.1 --port FREE --threads 1``, offline, until the block ends."""
    port = free_port()
    command = [
        sys.executable,
        str(APP),
        *map(str, arguments),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    server = Server(process, f"http://127.0.0.1:{port}/")
    try:
        server.startup_seconds = server.wait_until_ready(timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch_chromium(playwright):
    """Debian's chromium under Playwright (headless)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
