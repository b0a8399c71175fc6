"""SIGKILL a Dask worker process in the middle of a generation batch: the run completes, the killed
batch is done exactly once (0 lost, 0 duplicated candidates) and the GPU slot it held is freed when
its lease lapses (a real `prefect server`, whose repossessor revokes expired leases)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest

from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore

pytestmark = pytest.mark.slow

REPOSSESSOR_LOOP_S = 15  # Prefect's default: expired leases are looked for this often


def _executing(dask_worker) -> list[str]:
    return [str(ts.key) for ts in dask_worker.state.executing]


def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(prefect_server, tmp_path):
    from distributed import Client, LocalCluster
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    from flows.build_screening_set import build_screening_set
    from flows.limits import GPU_LIMIT, SLOT_LEASE_S, active_slots

    n, batch = 8, 2
    root = tmp_path / "ds"
    store = DatasetStore(root)
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=n, size=96))])
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    killed: dict = {}

    def kill_one_mid_batch() -> None:
        with Client(cluster.scheduler_address) as client:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                busy = {w: keys for w, keys in client.run(_executing).items() if keys}
                if busy:
                    time.sleep(1.5)  # inside the batch: its first source's device wait is 1 s
                    worker = min(busy)
                    pid = client.run(os.getpid)[worker]
                    killed.update(worker=worker, pid=pid, key=busy[worker][0], at=time.monotonic())
                    killed["groups_before"] = (
                        store.count("generation_groups") if store.table_state("generation_groups") else 0
                    )
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill_one_mid_batch, daemon=True)
    try:
        with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
            killer.start()
            state = build_screening_set.with_options(
                task_runner=DaskTaskRunner(address=cluster.scheduler_address)
            )(
                root=str(root),
                generator="latency",
                seconds_per_call=1.0,
                batch_size=batch,
                gpu_slots=2,
                labelstudio=False,
                teacher="off",
                return_state=True,
            )
            killer.join(5)
            assert killed, "no worker was killed"
            assert killed["groups_before"] < n, "the kill must land before generation finished"
            assert state.is_completed(), state.message
            gen = state.result()["generate"]
            # every source generated in a completed batch once; a killed attempt that had committed
            # its ledger row would show as skipped in its retry, never as generated twice
            assert gen["generated"] + gen["skipped"] == n and gen["items"] == n

            # the GPU slot the killed process held is freed when its lease lapses
            deadline = killed["at"] + SLOT_LEASE_S + REPOSSESSOR_LOOP_S + 10
            while active_slots(GPU_LIMIT) and time.monotonic() < deadline:
                time.sleep(1)
            assert active_slots(GPU_LIMIT) == 0, "the killed worker's GPU slot is still held"
            freed_after = time.monotonic() - killed["at"]
    finally:
        cluster.close()

    tab = store.read_arrow("candidates", ["candidate_id", "source_id", "params"])
    pairs = Counter(
        (s, json.loads(p)["slot"])
        for s, p in zip(tab.column("source_id").to_pylist(), tab.column("params").to_pylist())
    )
    assert tab.num_rows == len(pairs) == 4 * n, "lost or duplicated candidates"
    assert set(pairs.values()) == {1} and len({s for s, _ in pairs}) == n
    groups = store.read_arrow("generation_groups", ["source_id"]).column("source_id").to_pylist()
    assert sorted(groups) == sorted(set(groups)) and len(groups) == n
    print(
        f"killed {killed['worker']} (pid {killed['pid']}) in {killed['key']}; slot freed after {freed_after:.0f} s"
    )
