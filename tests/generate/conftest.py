import pytest

from aescot.ingest import IngestConfig, ingest
from aescot.samples import write_sample_sources
from tests.generate.tiny_pipeline import save_tiny_inpaint_pipeline


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A tiny random inpainting pipeline saved once per session (safetensors, ~5 MB)."""
    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("models") / "tiny-inpaint")


@pytest.fixture
def ingested(store, tmp_path):
    """A store with 5 ingested procedurally rendered product shots (128 px)."""
    manifest = write_sample_sources(tmp_path / "in", n=5, size=128)
    report = ingest(store, [str(manifest)], IngestConfig())
    assert report.added == 5, report.rejects
    return store
