"""Typed settings of the Label Studio stage. URL and token come from the environment only."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aescot.errors import ConfigError


class LabelStudioConfigError(ConfigError, RuntimeError):
    """The connection settings are missing or rejected (no token, wrong token)."""


class LabelStudioConfig(BaseSettings):
    """Where Label Studio is, which project to use and how to push/collect.

    ``url`` and ``api_key`` are read from ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``; the key is a
    :class:`~pydantic.SecretStr` so it never shows in a repr, a log line or a Prefect parameter.
    """

    model_config = SettingsConfigDict(env_prefix="AESCOT_LS_", extra="ignore", populate_by_name=True)

    url: str = Field("http://127.0.0.1:8080", validation_alias="LABEL_STUDIO_URL")
    api_key: SecretStr = Field(SecretStr(""), validation_alias="LABEL_STUDIO_API_KEY")
    project_title: str = Field("aescot screening", min_length=1, max_length=50)
    project_description: str = "Screen four generated candidates (A-D) of a product photo."
    label_config_path: Path | None = Field(
        None, description="labeling config XML (default: annotation/screening.xml)"
    )
    guidelines_path: Path | None = Field(
        None, description="guidelines markdown (default: annotation/guidelines.md)"
    )
    annotators_per_task: int = Field(1, ge=1, description="Label Studio's maximum_annotations (overlap)")
    document_root: Path | None = Field(
        None,
        validation_alias="LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT",
        description="the server's LOCAL_FILES_DOCUMENT_ROOT (default: the dataset root, as `aescot labelstudio "
        "start` sets it)",
    )
    storage: Literal["auto", "local", "s3", "gcs"] = Field(
        "auto",
        description="how tasks reference images: local files, or S3/GCS import storage with presigned URLs",
    )
    s3_endpoint: str | None = Field(None, description="S3-compatible endpoint for the server's S3 storage")
    s3_access_key_id: SecretStr | None = Field(
        None,
        validation_alias="AWS_ACCESS_KEY_ID",
        description="given to Label Studio's S3 storage (which keeps it to presign); else the server's own env",
    )
    s3_secret_access_key: SecretStr | None = Field(None, validation_alias="AWS_SECRET_ACCESS_KEY")
    s3_region: str | None = Field(None, validation_alias="AWS_DEFAULT_REGION")
    chunk_size: int = Field(500, ge=1, le=10_000, description="tasks per bulk import call")
    gold_share: float = Field(0.1, ge=0.0, lt=1.0, description="share of pushed tasks that are gold items")
    prefill_known_answers: bool = Field(
        False, description="send known answers as predictions (such items are then not scored as gold)"
    )
    check_images: bool = Field(True, description="check every image exists in the store before pushing")
    export_chunk: int = Field(500, ge=1, description="task ids per incremental export call")
    list_page_size: int = Field(1000, ge=1, description="tasks per page when listing what changed")
    cursor_overlap_s: float = Field(
        2.0,
        ge=0.0,
        description="re-list tasks stamped this long before the last pull began (writes still in flight then)",
    )
    timeout_s: float = Field(120.0, gt=0)
    deadline_s: float = Field(
        90.0,
        gt=0,
        description="give up once the server has not answered for this long in a row, whatever the "
        "retries and timeouts say (env AESCOT_LS_DEADLINE_S)",
    )
    retry_attempts: int = Field(6, ge=1, description="attempts per call when the server is unreachable")
    retry_wait_max_s: float = Field(10.0, gt=0)
    adjudicators: list[str] = Field(default_factory=list, description="annotators whose answer settles a tie")

    @field_validator("url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")

    def __repr__(self) -> str:  # SecretStr already hides the key; keep the repr short
        return f"LabelStudioConfig(url={self.url!r}, project_title={self.project_title!r})"


def resolve_config(store, **fields) -> LabelStudioConfig:
    """Settings for ``store``: ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` when set, else the embedded
    server running for this (local) dataset. Raises :class:`LabelStudioConfigError` saying what to do."""
    import os

    from aescot.labelstudio.server import local_connection

    cfg = LabelStudioConfig(**{k: v for k, v in fields.items() if v is not None})
    if not cfg.api_key.get_secret_value() and "LABEL_STUDIO_URL" not in os.environ and store.is_local:
        local = local_connection(Path(store.root))
        if local is None:
            raise LabelStudioConfigError(
                "no Label Studio: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, or run "
                f"`aescot labelstudio start --root {store.root}` first"
            )
        cfg = cfg.model_copy(update={"url": local[0], "api_key": local[1]})
    return cfg
