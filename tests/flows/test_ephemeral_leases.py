"""A run on the ephemeral API killed while it holds the GPU slot; the next run gets the slot back.

The ephemeral API (the demo, ``python -m flows.build_screening_set`` without ``PREFECT_API_URL``)
runs no lease service, and by default its leases live in its memory: before the fix the next run,
with a new ephemeral server over the same database, found the slot held with no lease to lapse and
waited for it forever. Now leases are files under ``PREFECT_HOME`` and the run frees lapsed ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aescot.samples import write_sample_sources
from aescot.store import DatasetStore
from flows.limits import LEASE_STORAGE_SETTING, SLOT_LEASE_S
from tests.flows.conftest import REPO
from tests.flows.test_local_entry import _run as run_local_entry

pytestmark = pytest.mark.slow

N_SOURCES = 24


def flow_args(root, manifest) -> list[str]:
    # the latency stand-in holds each batch's GPU slot for 6 x 0.3 s, so the kill lands while it is held
    return ["--root", str(root), "--sources", str(manifest), "-p", "teacher=off", "-p", "labelstudio=false"] + [
        "-p", "batch_size=6", "-p", 'generator="latency"', "-p", "seconds_per_call=0.3"
    ]  # fmt: skip


def test_a_killed_runs_gpu_slot_is_freed_for_the_next_run(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)  # the ephemeral API, as the README's one-run command uses it
    env.pop(LEASE_STORAGE_SETTING, None)
    manifest = write_sample_sources(tmp_path / "src", n=N_SOURCES, size=64)
    root = tmp_path / "ds"
    log1 = tmp_path / "run1.log"
    with open(log1, "wb") as out:
        command = [sys.executable, "-m", "flows.build_screening_set", *flow_args(root, manifest)]
        proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill while the last slot line says "held"
        slot_lines = [line for line in log1.read_text().splitlines() if "gpu slot" in line]
        if slot_lines and "gpu slot held" in slot_lines[-1]:
            break
        assert proc.poll() is None, log1.read_text()[-3000:]
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    store = DatasetStore(root)
    assert store.count("items") < N_SOURCES, "the kill must land mid-generation"
    leases = tmp_path / "prefect-home" / "concurrency_leases"
    assert any(p.name != "expirations.json" for p in leases.iterdir()), "the held slot's lease is a file"

    started = time.monotonic()
    done = run_local_entry(tmp_path, *flow_args(root, manifest))  # PREFECT_HOME: the same folder
    took = time.monotonic() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "freed the slots of 1 lapsed lease" in done.stdout + done.stderr
    assert took > SLOT_LEASE_S * 0.5, "the slot was freed only once the killed run's lease lapsed"
    assert store.count("items") == N_SOURCES == store.count("sources")
    assert store.count("candidates") == 4 * N_SOURCES


def test_a_slot_held_without_a_lease_is_said_and_the_readme_command_frees_it(
    prefect_server, monkeypatch, caplog
):
    """A slot a run killed before the fix still holds (no lease file): a task waiting for it warns,
    with the holds and the fix, instead of waiting in silence; the README's one-off command, as
    pasted, frees it and the task gets its slot."""
    import logging
    import threading

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import limits
    from flows.limits import GPU_LIMIT, active_slots, ensure_limits, hold_slots

    monkeypatch.setattr(limits, "SAY_WAITING_EVERY_S", 1.0)
    log = logging.getLogger("tests.slot_wait")
    held = threading.Event()

    def task() -> None:
        with (
            temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}),
            hold_slots([GPU_LIMIT], log),
        ):
            held.set()

    with (
        temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}),
        caplog.at_level(logging.WARNING),
    ):
        ensure_limits({GPU_LIMIT: 1})
        with get_client(sync_client=True) as client:  # a held slot with no lease, as a killed run left it
            client.increment_concurrency_slots([GPU_LIMIT], slots=1, mode="concurrency")
        assert active_slots(GPU_LIMIT) == 1
        waiter = threading.Thread(target=task, daemon=True)
        waiter.start()
        deadline = time.monotonic() + 60
        while "still waiting for a slot" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "aescot-gpu 1 of 1 held" in caplog.text and "prefect gcl update aescot-gpu" in caplog.text
        assert not held.is_set()
        done = subprocess.run(
            "prefect gcl update aescot-gpu --active-slots 0",  # as pasted, with the venv's prefect on PATH
            shell=True,
            env={**prefect_server, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        waiter.join(60)
        assert held.is_set(), "the waiting task got its slot once the README command freed it"
        assert active_slots(GPU_LIMIT) == 0  # and released it
