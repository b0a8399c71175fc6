"""The flow refuses a damaged store at start, and does not retry configuration errors."""

from __future__ import annotations

import time

import pytest

from aescot.errors import DamagedStore
from aescot.ingest import ingest
from aescot.labelstudio.config import LabelStudioConfigError
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore


def test_the_flow_refuses_a_damaged_store_before_doing_anything(prefect_api, tmp_path):
    from flows.build_screening_set import build_screening_set

    store = DatasetStore(tmp_path / "ds")
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=2, size=96))])
    data = sorted((tmp_path / "ds" / "tables" / "sources.lance" / "data").glob("*.lance"))
    assert data, "the sources table has no Lance data file"
    data[0].write_bytes(data[0].read_bytes()[:100])  # truncated, as a torn copy leaves it
    before = store.table_state("sources").version
    with pytest.raises(DamagedStore) as err:
        build_screening_set(root=store.root, labelstudio=False, teacher="off")
    msg = str(err.value)
    assert "table 'sources'" in msg and data[0].name in msg and "aescot repair" in msg, msg
    # nothing ran: no stage table was written, the damaged one was not touched
    assert store.table_state("candidates") is None and store.table_state("items") is None
    assert store.table_state("sources").version == before


def test_configuration_errors_are_not_retried(prefect_api, tmp_path, monkeypatch):
    from flows import tasks

    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    store = DatasetStore(tmp_path / "ds")
    ingest(store, [str(write_sample_sources(tmp_path / "src", n=1, size=96))])
    started = time.monotonic()
    with pytest.raises(LabelStudioConfigError, match="no Label Studio"):
        tasks.push_items(store.root, "p", 0.1)  # no server configured, none embedded: a config error
    assert time.monotonic() - started < 15, "retried (2 + 10 + 30 s of backoff) instead of failing at once"
