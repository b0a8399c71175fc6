"""The flow on Prefect's real (ephemeral) API: stages advance, re-runs repeat nothing,
bad parameters fail fast, and the same flow runs on a Dask cluster."""

from __future__ import annotations

import time

import pytest
from prefect.exceptions import ParameterTypeError

from aescot import status_cache
from aescot.samples import write_sample_sources
from aescot.status import status_report
from aescot.store import DatasetStore
from flows.build_screening_set import build_screening_set

pytestmark = pytest.mark.usefixtures("prefect_api")
OFFLINE = {"labelstudio": False, "teacher": "off"}


@pytest.mark.slow  # end-to-end, > 10 s on 2 cores
def test_flow_generates_items_and_rerun_repeats_nothing(tmp_path):
    manifest = write_sample_sources(tmp_path / "src", n=5, size=160)
    root = str(tmp_path / "ds")
    first = build_screening_set(root=root, sources=[str(manifest)], batch_size=2, **OFFLINE)
    assert first["ingest"]["added"] == 5
    assert first["generate"]["items"] == 5 and first["generate"]["candidates"] == 20
    store = DatasetStore(root)
    versions_before = store.table_versions()
    second = build_screening_set(root=root, sources=[str(manifest)], batch_size=2, **OFFLINE)
    assert second["ingest"]["added"] == 0 and second["generate"] == "nothing pending"
    assert store.count("items") == 5 and store.count("candidates") == 20
    # the re-run committed nothing to any stage table (only rejects could, and there are none)
    assert store.table_versions() == versions_before and "sources" in versions_before


def test_summary_artifact_is_written(tmp_path):
    from prefect.client.orchestration import get_client

    manifest = write_sample_sources(tmp_path / "src", n=2, size=128)
    build_screening_set(root=str(tmp_path / "ds"), sources=[str(manifest)], **OFFLINE)
    # the flow's writers recorded what ``aescot status`` shows: it is served without counting again
    served = status_cache.fresh_status(str(tmp_path / "ds"))
    assert served is not None and served == status_report(DatasetStore(tmp_path / "ds"))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    md = [a for a in artifacts if a.key == "build-screening-set-summary" and str(tmp_path) in a.data]
    assert md and "| screening items | 2 |" in md[0].data


@pytest.mark.parametrize(
    "bad", [{"batch_size": 0}, {"min_consistency": 1.5}, {"generator": "dall-e"}, {"teacher": "maybe"}]
)
def test_bad_parameters_fail_fast_with_the_field_named(tmp_path, bad):
    started = time.monotonic()
    with pytest.raises(ParameterTypeError) as info:
        build_screening_set(root=str(tmp_path / "ds"), **{**OFFLINE, **bad})
    assert next(iter(bad)) in str(info.value)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "ds").exists()  # nothing ran


@pytest.mark.slow  # end-to-end, > 10 s on 2 cores
def test_same_flow_on_a_local_dask_cluster(tmp_path):
    from prefect_dask import DaskTaskRunner

    manifest = write_sample_sources(tmp_path / "src", n=6, size=128)
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "processes": True, "threads_per_worker": 1, "dashboard_address": None}
    )
    result = build_screening_set.with_options(task_runner=runner)(
        root=str(tmp_path / "ds"), sources=[str(manifest)], batch_size=2, **OFFLINE
    )
    assert result["generate"]["items"] == 6
    store = DatasetStore(tmp_path / "ds")
    items = store.read("items")
    assert len(items) == 6 and len({i["source_id"] for i in items}) == 6
