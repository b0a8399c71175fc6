"""Typed configuration of the teacher endpoint, the rationale stage and the filter."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aescot.errors import ConfigError
from aescot.teacher.prompts import PROMPT_VERSION

ENV_HELP = (
    "set AESCOT_TEACHER_BASE_URL (an OpenAI-compatible endpoint, e.g. https://api.openai.com/v1, "
    "http://localhost:8000/v1 for vLLM/SGLang, https://dashscope-intl.aliyuncs.com/compatible-mode/v1 for Qwen-VL) "
    "and AESCOT_TEACHER_MODEL (e.g. gpt-4o, Qwen/Qwen2.5-VL-72B-Instruct); set AESCOT_TEACHER_API_KEY "
    "(or OPENAI_API_KEY) when the server needs a key"
)


class TeacherNotConfigured(ConfigError, ValueError):
    """The endpoint or model is missing; the message says which variables to set."""


class TeacherSettings(BaseSettings):
    """Where the teacher is and how to call it. Read from ``AESCOT_TEACHER_*`` environment variables.

    The API key is a :class:`~pydantic.SecretStr`: it prints as ``**********`` and only the
    HTTP client ever sees its value.
    """

    model_config = SettingsConfigDict(env_prefix="AESCOT_TEACHER_", extra="ignore", populate_by_name=True)

    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL, ending in /v1 for most servers"
    )
    model: str | None = Field(None, description="the model name the server knows")
    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("api_key", "AESCOT_TEACHER_API_KEY", "OPENAI_API_KEY"),
        description="bearer token; local servers often need none",
    )
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight at once")
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout")
    max_attempts: int = Field(6, ge=1, description="tries per request (429/5xx/timeouts/connection errors)")
    retry_initial_wait_s: float = Field(1.0, ge=0, description="first backoff wait; doubles, with jitter")
    retry_max_wait_s: float = Field(60.0, ge=0, description="cap of one backoff wait, Retry-After included")
    max_tokens: int = Field(2048, ge=1)
    temperature: float = Field(0.7, ge=0, le=2)
    structured_output: Literal["auto", "on", "off"] = Field(
        "auto", description="ask for JSON-schema output; 'auto' falls back to text when the server refuses"
    )
    image_max_side: int = Field(
        768, ge=0, description="images are downscaled to this longest side (0: as stored)"
    )
    image_format: Literal["jpeg", "png", "webp"] = "jpeg"
    price_input_per_mtok: float = Field(
        0.0, ge=0, description="USD per million prompt tokens, for cost estimates"
    )
    price_output_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens")

    def missing(self) -> list[str]:
        """The environment variables that still need a value."""
        out = []
        if not self.base_url:
            out.append("AESCOT_TEACHER_BASE_URL")
        if not self.model:
            out.append("AESCOT_TEACHER_MODEL")
        return out

    def require(self) -> TeacherSettings:
        """Return self, or raise :class:`TeacherNotConfigured` saying what to set."""
        missing = self.missing()
        if missing:
            raise TeacherNotConfigured(
                f"no teacher endpoint configured ({', '.join(missing)} unset): {ENV_HELP}"
            )
        scheme = urlsplit(self.base_url or "").scheme
        if scheme not in ("http", "https"):
            raise TeacherNotConfigured(
                f"AESCOT_TEACHER_BASE_URL must be an http(s) URL, got {self.base_url!r}"
            )
        return self

    def scrub(self, text: str | None) -> str | None:
        """``text`` with every secret of these settings (the API key) replaced by ``***``.

        Applied to everything stored from a reply, not only to error messages: a server that echoes
        the request headers back must not put the key into the store.
        """
        key = self.api_key.get_secret_value() if self.api_key is not None else ""
        if not text or not key:
            return text
        return text.replace(key, "***")

    @property
    def priced(self) -> bool:
        return self.price_input_per_mtok > 0 or self.price_output_per_mtok > 0

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """Estimated USD of one call, or None when usage is unknown."""
        if prompt_tokens is None or completion_tokens is None:
            return None
        return (
            prompt_tokens * self.price_input_per_mtok + completion_tokens * self.price_output_per_mtok
        ) / 1e6


class RationaleConfig(BaseModel):
    """The rationale stage: how many samples per item, which prompt, and the guards."""

    teacher: TeacherSettings = Field(default_factory=TeacherSettings)
    mode: Literal["blind", "answer_driven"] = "blind"
    samples: int = Field(4, ge=1, le=64, description="k: samples per item")
    prompt_version: str = PROMPT_VERSION
    max_cost_usd: float | None = Field(
        None, gt=0, description="stop starting calls once the estimate reaches this"
    )
    limit: int | None = Field(None, ge=0, description="start at most this many calls in this run")
    flush_every: int = Field(
        32, ge=1, description="results per Parquet part (a crash loses at most this many)"
    )

    @model_validator(mode="after")
    def _cost_needs_prices(self) -> RationaleConfig:
        if self.max_cost_usd is not None and not self.teacher.priced:
            raise ValueError(
                "max_cost_usd needs token prices: set AESCOT_TEACHER_PRICE_INPUT_PER_MTOK and "
                "AESCOT_TEACHER_PRICE_OUTPUT_PER_MTOK (USD per million tokens)"
            )
        return self


DEFAULT_LEAK_PATTERNS: tuple[str, ...] = (
    r"\bannotat(?:or|ors|ion|ions|ed)\b",
    r"\bhuman (?:label|labels|labell?er|answer|annotation|reviewer|judge)s?\b",
    r"\bground[- ]truth\b",
    r"\b(?:verified|given|provided|reference|expected|correct|gold) answer\b",
    r"\b(?:we are|we were|i am|i was|i've been|i have been) (?:told|given)\b",
    r"\baccording to the (?:answer|label|labels)\b",
    r"\bthe answer (?:says|states|indicates|given)\b",
)
"""Phrases that reveal the teacher was shown the answer (case-insensitive regular expressions)."""


class FilterConfig(BaseModel):
    """The consistency filter. An item is decided once ``samples`` samples finished without a call error."""

    min_consistency: float = Field(0.8, ge=0, le=1)
    samples: int = Field(4, ge=1, le=64, description="k the rationale stage was run with")
    teacher_model: str | None = Field(None, description="None: the one model the rationales come from")
    prompt_version: str = PROMPT_VERSION
    mode: Literal["blind", "answer_driven"] = "blind"
    min_chars: int = Field(200, ge=0, description="shortest acceptable reasoning (characters inside <think>)")
    max_chars: int = Field(12000, ge=1, description="longest acceptable reasoning")
    leak_patterns: tuple[str, ...] = DEFAULT_LEAK_PATTERNS
