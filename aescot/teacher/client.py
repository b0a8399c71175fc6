"""Async Chat Completions client for any OpenAI-compatible endpoint, on the official ``openai`` package.

* bounded concurrency (a semaphore of ``concurrency`` requests in flight);
* retries with exponential backoff and jitter (tenacity) on 429, 5xx, timeouts, dropped
  connections and unreadable response bodies; a 429's ``Retry-After`` (or ``retry-after-ms``)
  is honoured and pauses *every* request of this client, since a rate limit is shared;
* a per-request timeout; the ``openai`` client's own retries are off so there is one policy;
* structured output: a JSON schema ``response_format`` when the server supports it; with
  ``structured_output="auto"`` a 400 that names ``response_format`` switches to plain text
  (parsed from ``<think>..</think><answer>..</answer>``) for the rest of the run;
* 401/403/404 abort the run (:class:`TeacherFatalError`): every later call would fail too.

The API key is handed to the ``openai`` client only; error texts are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from aescot.errors import ConfigError, ServiceUnavailable
from aescot.teacher.config import TeacherSettings
from aescot.teacher.parse import DIMENSIONS, LETTERS

log = logging.getLogger(__name__)

_LETTER_LIST = {"type": "array", "items": {"type": "string", "enum": list(LETTERS)}}
ANSWER_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "description": "each candidate walked through the four dimensions"},
        "answer": {
            "type": "object",
            "properties": {
                "acceptable": _LETTER_LIST,
                "best": {"anyOf": [{"type": "string", "enum": list(LETTERS)}, {"type": "null"}]},
                "dimensions": {
                    "type": "object",
                    "properties": {
                        k: {"type": "array", "items": {"type": "string", "enum": list(DIMENSIONS)}}
                        for k in LETTERS
                    },
                    "required": list(LETTERS),
                    "additionalProperties": False,
                },
            },
            "required": ["acceptable", "best", "dimensions"],
            "additionalProperties": False,
        },
    },
    "required": ["reasoning", "answer"],
    "additionalProperties": False,
}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "screening_answer", "schema": ANSWER_JSON_SCHEMA, "strict": True},
}


class MalformedResponse(ServiceUnavailable, ValueError):
    """A 200 response without a usable completion (retried like a 5xx)."""


class TeacherFatalError(ConfigError, RuntimeError):
    """An error every further call would hit too (bad key, wrong URL or model): the run stops."""


@dataclass
class ChatResult:
    """One finished request: its text and usage, or the error after the last attempt."""

    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    attempts: int = 1
    structured: bool = False
    latency_s: float = 0.0


def _retryable(exc: BaseException) -> bool:
    if isinstance(
        exc,
        (
            openai.RateLimitError,
            openai.APIConnectionError,
            openai.APIResponseValidationError,
            MalformedResponse,
        ),
    ):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409)
    return isinstance(exc, json.JSONDecodeError)  # a 200 whose body is not JSON


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """Seconds a 429/503 response asks us to wait (``retry-after-ms``, ``retry-after`` seconds or date)."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class TeacherClient:
    """Calls one model on one endpoint; share one instance across a run (it holds the connection pool)."""

    def __init__(self, settings: TeacherSettings):
        self.settings = settings.require()
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._secret = key
        self._client = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=key or "EMPTY",
            timeout=settings.timeout_s,
            max_retries=0,
        )
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._structured: bool | None = {"auto": None, "on": True, "off": False}[settings.structured_output]
        self._pause_until = 0.0
        self._backoff = wait_exponential_jitter(
            initial=settings.retry_initial_wait_s,
            max=settings.retry_max_wait_s,
            jitter=settings.retry_initial_wait_s,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def scrub(self, text: str) -> str:
        """``text`` with the API key (if any) replaced by ``***``."""
        return text.replace(self._secret, "***") if self._secret else text

    def _describe(self, exc: BaseException) -> str:
        status = getattr(exc, "status_code", None)
        head = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
        message = getattr(exc, "message", None) or str(exc) or repr(exc)
        return self.scrub(f"{head}: {message}")[:500]

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc)
        if asked is not None:
            wait = min(asked, self.settings.retry_max_wait_s)
            if isinstance(exc, openai.RateLimitError):  # the limit is shared: hold every request back
                self._pause_until = max(self._pause_until, time.monotonic() + wait)
            return wait
        return self._backoff(state)

    async def complete(
        self, messages: list[dict[str, Any]], headers: Mapping[str, str] | None = None
    ) -> ChatResult:
        """One chat completion with retries; failures come back as ``ChatResult.error``.

        Raises :class:`TeacherFatalError` for authentication, permission and not-found errors.
        """
        attempts = 0
        started = time.monotonic()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    async with self._slots:
                        delay = self._pause_until - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        result = await self._create(messages, headers)
                    result.attempts = attempts
                    result.latency_s = time.monotonic() - started
                    return result
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
            raise TeacherFatalError(
                f"the teacher endpoint refused the request ({self._describe(exc)}); check AESCOT_TEACHER_BASE_URL, "
                "AESCOT_TEACHER_MODEL and the API key"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any other failure is this request's error, recorded
            log.info("teacher call failed after %d attempt(s): %s", attempts, self._describe(exc))
            return ChatResult(
                None, error=self._describe(exc), attempts=attempts, latency_s=time.monotonic() - started
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _create(self, messages: list[dict[str, Any]], headers: Mapping[str, str] | None) -> ChatResult:
        kwargs: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
            "extra_headers": dict(headers or {}),
        }
        structured = self._structured is not False
        if structured:
            kwargs["response_format"] = RESPONSE_FORMAT
        try:
            resp = await self._client.chat.completions.create(**kwargs)
        except openai.BadRequestError as exc:
            if not (structured and self._structured is None and _mentions_response_format(exc)):
                raise
            log.info("endpoint does not support JSON-schema output; using <think>/<answer> text from now on")
            self._structured = False
            kwargs.pop("response_format")
            structured = False
            resp = await self._client.chat.completions.create(**kwargs)
        if structured and self._structured is None:
            self._structured = True
        if not getattr(resp, "choices", None):
            raise MalformedResponse("the response has no choices")
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        return ChatResult(
            text=choice.message.content or "",
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=choice.finish_reason,
            structured=structured,
        )


def _mentions_response_format(exc: openai.BadRequestError) -> bool:
    text = f"{getattr(exc, 'message', '')} {exc.body}".lower()
    return any(word in text for word in ("response_format", "json_schema", "structured", "guided"))
