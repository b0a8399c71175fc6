"""Settings: URL and token only from their Label Studio names in the environment, never shown."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aescot.labelstudio import LabelStudioConfig
from aescot.labelstudio.client import LabelStudioConfigError, make_client


def test_url_and_token_come_from_the_label_studio_env_names(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls.example:8080/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "s3cr3t-token")
    monkeypatch.setenv("API_KEY", "unrelated")
    monkeypatch.setenv("AESCOT_LS_GOLD_SHARE", "0.2")
    cfg = LabelStudioConfig()
    assert (cfg.url, cfg.api_key.get_secret_value(), cfg.gold_share) == (
        "http://ls.example:8080",
        "s3cr3t-token",
        0.2,
    )
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())


def test_missing_token_is_a_readable_error(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioConfigError, match="LABEL_STUDIO_API_KEY"):
        make_client(LabelStudioConfig())


@pytest.mark.parametrize(
    "field, value", [("gold_share", 1.0), ("chunk_size", 0), ("project_title", "x" * 51)]
)
def test_out_of_range_settings_are_refused(field, value):
    with pytest.raises(ValidationError):
        LabelStudioConfig(**{field: value})
