"""The store on an object store: the same code against a real S3-compatible server on loopback."""

import os

from aescot.ingest import ingest
from aescot.samples import write_sample_sources
from aescot.store import DatasetStore


def test_ingest_into_s3_and_read_back(s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # how users point boto/s3fs at MinIO & co
    manifest = write_sample_sources(tmp_path / "samples", n=3)
    store = DatasetStore("s3://aescot/ds-test")
    assert not store.is_local and store.local_path("x") is None
    report = ingest(store, [str(manifest)])
    assert report.added == 3
    again = ingest(DatasetStore("s3://aescot/ds-test"), [str(manifest)])
    assert again.added == 0 and again.already_present == 3
    rows = DatasetStore("s3://aescot/ds-test").read("sources")
    assert len(rows) == 3
    assert store.read_bytes(rows[0]["image_key"]).startswith(b"\x89PNG")
    assert store.uri(rows[0]["image_key"]).startswith("s3://aescot/ds-test/images/")
    # nothing temporary is left behind on the object store
    assert not [k for k in store.list_keys("") if os.path.basename(k).startswith(".tmp")]
