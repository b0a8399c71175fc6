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
    part = store.local_path(store.part_keys("sources")[0])
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(DamagedStore, match=r"table 'sources': file .*part-.* is damaged.*aescot repair"):
        build_screening_set(root=store.root, labelstudio=False, teacher="off")
    assert store.part_keys("candidates") == [] and store.part_keys("items") == []


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
