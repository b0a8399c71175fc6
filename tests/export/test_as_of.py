"""An export cites the table versions it read, and ``aescot export --as-of TAG`` writes it again byte for
byte after the store has moved on (more labels, a new export, compaction), without writing to the store."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from aescot.cli.main import app
from aescot.export import AsOfError, ExportConfig, export_as_of, export_dataset
from aescot.export.history import EXPORTS_TABLE
from aescot.store import DatasetStore
from tests.export.demo_store import DemoSpec, build_demo_store

TAG = re.compile(r"export (export-[0-9a-f]{16}) read")


def _digests(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _export(store: DatasetStore, out, *extra: str) -> tuple[str, str]:
    result = CliRunner().invoke(app, ["export", str(out), "--root", store.root, "--seed", "4", *extra])
    assert result.exit_code == 0, result.output
    return TAG.search(result.output).group(1), result.output


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A store exported once, then grown and exported again: (store, tmp, first tag, second tag)."""
    tmp = tmp_path_factory.mktemp("asof")
    store = DatasetStore(tmp / "ds")
    build_demo_store(store, DemoSpec(n_items=30, near_duplicate_every=4, seed=9))
    first, output = _export(store, tmp / "first")
    assert f"--as-of {first}" in output  # the command that writes it again is printed
    build_demo_store(store, DemoSpec(n_items=45, near_duplicate_every=4, seed=9))  # 15 more labelled items
    second, _ = _export(store, tmp / "second")
    again, output = _export(store, tmp / "second")  # unchanged inputs: nothing rewritten, same tag cited
    assert "nothing rewritten" in output and again == second
    return store, tmp, first, second


def test_as_of_the_first_tag_writes_the_first_export_byte_for_byte(history):
    store, tmp, first, second = history
    assert first != second
    one, two = _digests(tmp / "first"), _digests(tmp / "second")
    assert one != two and one.keys() <= two.keys() | one.keys()
    for table in store.table_names():  # clean-up now would drop every untagged old version
        store.tables.compact(table, keep_for=timedelta(0))
    before = store.table_versions()

    result = CliRunner().invoke(app, ["export", str(tmp / "again"), "--root", store.root, "--as-of", first])
    assert result.exit_code == 0, result.output
    assert f"as of {first}: export {first}" in result.output
    again = _digests(tmp / "again")
    assert again == one, sorted(k for k in again.keys() | one.keys() if again.get(k) != one.get(k))
    assert len(one) > 10 and any(k.endswith(".parquet") for k in one) and "plots/agreement_hist.png" in one
    assert store.table_versions() == before  # read only: no tag, split, reject or export row written


def test_the_manifest_and_the_card_cite_the_versions_read(history):
    store, tmp, first, _ = history
    manifest = json.loads((tmp / "first" / "manifest.json").read_text())
    assert manifest["export_id"] == first and "out" not in manifest["config"]
    assert set(manifest["versions"]) >= {"labels", "items", "selections", "rationales", "sources"}
    assert store.tables.tagged_versions(first, list(manifest["versions"])) == manifest["versions"]
    card = (tmp / "first" / "README.md").read_text()
    assert f"--as-of {first}" in card and "## Provenance" in card
    assert f"| labels | {manifest['versions']['labels']} |" in card
    [row] = store.read(EXPORTS_TABLE.name, keys=[first])
    assert row["created_at"] == manifest["created_at"] and json.loads(row["versions"]) == manifest["versions"]


def test_the_second_export_sees_the_new_items_and_its_own_tag_reproduces_it(history, tmp_path):
    store, tmp, _, second = history
    m1 = json.loads((tmp / "first" / "manifest.json").read_text())
    m2 = json.loads((tmp / "second" / "manifest.json").read_text())
    assert sum(m2["items"].values()) == 45 > sum(m1["items"].values()) == 30
    summary = export_as_of(store, second, str(tmp_path / "again2"))
    assert summary.export_id == second and _digests(tmp_path / "again2") == _digests(tmp / "second")
    cfg = ExportConfig(**m2["config"], out=str(tmp_path / "small_batches"), batch_size=7)
    assert export_dataset(store, cfg, as_of=second).export_id == second  # batches change no byte
    assert _digests(tmp_path / "small_batches") == _digests(tmp / "second")


def test_as_of_keeps_the_splits_the_export_had(history, tmp_path):
    """The first export's split assignments came from the splits table as tagged (before it wrote new ones);
    the as-of export plans from the same pinned table and writes no assignment."""
    store, _, first, _ = history
    splits_before = store.read_arrow("export_splits").sort_by("source_id")
    export_as_of(store, first, str(tmp_path / "again"))
    assert store.read_arrow("export_splits").sort_by("source_id").equals(splits_before)


def test_as_of_refuses_other_settings(history, tmp_path):
    store, _, first, _ = history
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "x"), "--root", store.root, "--as-of", first, "--seed", "5"]
    )
    assert result.exit_code == 2 and "--seed" in result.output and "recorded settings" in result.output
    with pytest.raises(AsOfError, match="not those of export"):
        export_dataset(store, ExportConfig(out=str(tmp_path / "y"), seed=5), as_of=first)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_as_of_an_unknown_reference_says_so(history, tmp_path):
    store, *_ = history
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "x"), "--root", store.root, "--as-of", "export-0000000000000000"]
    )
    assert result.exit_code == 2 and "export-0000000000000000" in result.output


def test_as_of_a_time_before_any_label_says_so(history, tmp_path):
    store, *_ = history
    result = CliRunner().invoke(
        app, ["export", str(tmp_path / "x"), "--root", store.root, "--as-of", "2001-01-01T00:00:00"]
    )
    assert result.exit_code == 2 and "no labels as of 2001-01-01" in result.output
