"""A labelled store and its export, built once per module (building and exporting take ~1 s)."""

from __future__ import annotations

import pytest

from aescot.export import ExportConfig, export_dataset
from aescot.store import DatasetStore
from tests.export.demo_store import DemoSpec, build_demo_store


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """(store, ids) with 40 labelled items, every third source a near-duplicate of the one before."""
    store = DatasetStore(tmp_path_factory.mktemp("labelled") / "ds")
    ids = build_demo_store(store, DemoSpec(n_items=40, near_duplicate_every=3, seed=1))
    return store, ids


@pytest.fixture(scope="module")
def exported(labelled, tmp_path_factory):
    """(store, out folder, summary) of an export with embedded images."""
    store, _ = labelled
    out = tmp_path_factory.mktemp("export") / "out"
    summary = export_dataset(store, ExportConfig(out=str(out), seed=3))
    return store, out, summary
