"""A Label Studio URL that accepts connections and never answers: one line after the deadline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_server():
    """A loopback socket that accepts every connection and never sends a byte."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", held
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()


@pytest.mark.parametrize("command", [["push"], ["collect"], ["labelstudio", "setup"]], ids="-".join)
def test_silent_label_studio_fails_in_one_line_after_the_deadline(tmp_path, silent_server, command):
    url, held = silent_server
    store = DatasetStore(tmp_path / "ds")
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=1, size=96))])
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": url,
        "LABEL_STUDIO_API_KEY": "token-for-a-silent-server",
        "AESCOT_LS_DEADLINE_S": "3",
        "COLUMNS": "300",
    }
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "aescot.cli.main", *command, "--root", store.root],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,  # the default settings alone took about 12 minutes
        check=False,
    )
    elapsed = time.monotonic() - started
    assert held, "the command never connected"
    assert out.returncode == 4, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()  # retry warnings, then the one-line error; no traceback
    assert "Traceback" not in out.stderr and len(lines) <= 3, out.stderr
    assert lines[-1].startswith(f"error: Label Studio at {url} has not answered for 3 s"), out.stderr
    assert "token-for-a-silent-server" not in out.stdout + out.stderr
    assert elapsed < 30, f"took {elapsed:.1f}s for a 3 s deadline"
