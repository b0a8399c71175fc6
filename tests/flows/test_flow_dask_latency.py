"""The flow with the latency (stand-in GPU) backend on a Dask cluster of worker processes: several
batches in flight, every source generated once, no (source, slot) written twice, no GPU slot left held.
Speed is measured in bench/generate_cluster.py, not here."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from prefect.exceptions import ParameterTypeError

from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore
from flows.build_screening_set import build_screening_set

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_the_flow_takes_the_latency_backend_and_checks_its_wait():
    build_screening_set.validate_parameters({"generator": "latency", "seconds_per_call": 0.25})
    with pytest.raises(ParameterTypeError) as info:
        build_screening_set.validate_parameters({"generator": "latency", "seconds_per_call": -1})
    assert "seconds_per_call" in str(info.value)


@pytest.mark.slow  # a Dask cluster and 4 batches: > 10 s on 2 cores
def test_latency_batches_in_flight_on_two_dask_workers(tmp_path):
    from distributed import LocalCluster
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect_dask import DaskTaskRunner

    from flows.limits import GPU_LIMIT, active_slots

    n, batch = 8, 2
    root = tmp_path / "ds"
    store = DatasetStore(root)
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=n, size=96))])
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    try:
        state = build_screening_set.with_options(
            task_runner=DaskTaskRunner(address=cluster.scheduler_address)
        )(
            root=str(root),
            generator="latency",
            seconds_per_call=0.2,
            batch_size=batch,
            gpu_slots=2,
            labelstudio=False,
            teacher="off",
            return_state=True,
        )
    finally:
        cluster.close()
    assert state.is_completed(), state.message
    gen = state.result()["generate"]
    assert (gen["generated"], gen["skipped"], gen["candidates"], gen["items"]) == (n, 0, 4 * n, n)

    tab = store.read_arrow("candidates", ["candidate_id", "source_id", "generator", "params"])
    pairs = Counter(
        (s, json.loads(p)["slot"])
        for s, p in zip(tab.column("source_id").to_pylist(), tab.column("params").to_pylist())
    )
    assert set(tab.column("generator").to_pylist()) == {"latency"}
    assert tab.num_rows == len(set(tab.column("candidate_id").to_pylist())) == len(pairs) == 4 * n
    assert set(pairs.values()) == {1} and len({s for s, _ in pairs}) == n

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    generate_runs = [r for r in runs if r.name.startswith("generate")]
    assert len(generate_runs) == n // batch and all(r.state.is_completed() for r in generate_runs)
    assert active_slots(GPU_LIMIT) == 0
