"""The Label Studio SDK client, and retries for when the server is briefly unreachable.

Every request (SDK or plain HTTP) goes through one transport that enforces ``deadline_s``: once the
server at a URL has not answered for that long in a row (timeouts, refused connections, 502-504),
every further request to it fails at once with :class:`LabelStudioUnavailable` for a short cool-off,
so a command facing a server that accepts connections and never replies ends in about the deadline,
whatever the retry loops above it would do. A successful answer resets the clock.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from aescot.errors import ServiceUnavailable
from aescot.labelstudio.config import LabelStudioConfig, LabelStudioConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


class LabelStudioUnavailable(ServiceUnavailable, RuntimeError):
    """The server did not answer after all retries; work done so far is saved, re-run to resume."""


@dataclass
class _Silence:
    """How long the server at one URL has been silent, and until when requests to it fail fast."""

    since: float | None = None
    open_until: float = 0.0


_SILENCE: dict[str, _Silence] = {}
_LOCK = threading.Lock()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: making one loads the CA bundle (~20 ms), and a command makes
    several clients (SDK, plain HTTP)."""
    return httpx.create_ssl_context()


class DeadlineTransport(httpx.HTTPTransport):
    """An HTTP transport that gives up on a server silent for ``deadline_s`` (see the module docs)."""

    def __init__(self, config: LabelStudioConfig):
        super().__init__(verify=_tls())
        self.url = config.url
        self.deadline_s = config.deadline_s
        self.cool_off_s = min(30.0, config.deadline_s)

    def _unavailable(self) -> LabelStudioUnavailable:
        return LabelStudioUnavailable(
            f"Label Studio at {self.url} has not answered for {self.deadline_s:g} s "
            "(deadline: AESCOT_LS_DEADLINE_S); progress is saved, re-run to resume"
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        now = time.monotonic()
        with _LOCK:
            state = _SILENCE.setdefault(self.url, _Silence())
            if now < state.open_until:
                raise self._unavailable()
            if state.since is not None and now - state.since >= self.deadline_s:
                state.since, state.open_until = None, now + self.cool_off_s
                raise self._unavailable()
            remaining = self.deadline_s - (now - state.since if state.since is not None else 0.0)
        timeout = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {
            k: remaining if timeout.get(k) is None else min(timeout[k], remaining)
            for k in ("connect", "read", "write", "pool")
        }
        try:
            response = super().handle_request(request)
        except httpx.TransportError:
            self._silent(now)
            raise
        if response.status_code in (502, 503, 504):
            self._silent(now)
        else:
            with _LOCK:
                state.since = None
        return response

    def _silent(self, started: float) -> None:
        with _LOCK:
            state = _SILENCE.setdefault(self.url, _Silence())
            if state.since is None:
                state.since = started


def make_client(config: LabelStudioConfig) -> LabelStudio:
    key = config.api_key.get_secret_value()
    if not key:
        raise LabelStudioConfigError(
            "no Label Studio token: set LABEL_STUDIO_API_KEY (and LABEL_STUDIO_URL, now "
            f"{config.url!r}); for the embedded server run `aescot labelstudio start`"
        )
    http = httpx.Client(timeout=config.timeout_s, transport=DeadlineTransport(config))
    return LabelStudio(base_url=config.url, api_key=key, timeout=config.timeout_s, httpx_client=http)


def is_transient(exc: BaseException) -> bool:
    """Connection problems and gateway/overload answers are worth retrying; 4xx are not."""
    if isinstance(exc, (httpx.TransportError, ConnectionError)):
        return True
    return isinstance(exc, ApiError) and exc.status_code in (429, 502, 503, 504)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("Label Studio unreachable (%s); retry %d", type(exc).__name__, state.attempt_number)


def call(config: LabelStudioConfig, fn: Callable[[], T], what: str) -> T:
    """Run ``fn`` with retries on transient errors; raise :class:`LabelStudioUnavailable` when they run out."""
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(config.retry_attempts),
        wait=wait_exponential(multiplier=0.5, max=config.retry_wait_max_s),
        before_sleep=_log_retry,
        reraise=True,
    )
    try:
        return retrying(fn)
    except ApiError as exc:
        if exc.status_code == 401:
            raise LabelStudioConfigError(
                f"Label Studio at {config.url} rejected the token (HTTP 401) during {what}; check "
                "LABEL_STUDIO_API_KEY (legacy tokens must be enabled on the server)"
            ) from None
        if is_transient(exc):
            raise LabelStudioUnavailable(
                f"{what}: Label Studio at {config.url} answered {exc.status_code}"
            ) from exc
        raise
    except (httpx.TransportError, ConnectionError) as exc:
        raise LabelStudioUnavailable(
            f"{what}: Label Studio at {config.url} unreachable after {config.retry_attempts} attempts "
            f"({type(exc).__name__}); progress is saved, re-run to resume"
        ) from exc


def http_client(config: LabelStudioConfig) -> httpx.Client:
    """A plain HTTP client for the endpoints the SDK wraps awkwardly (export by ``ids[]``, task paging)."""
    key = config.api_key.get_secret_value()
    if not key:
        make_client(config)  # raises the readable error
    return httpx.Client(
        base_url=config.url,
        headers={"Authorization": f"Token {key}"},
        timeout=config.timeout_s,
        transport=DeadlineTransport(config),
    )


def get_response(
    config: LabelStudioConfig, http: httpx.Client, path: str, params: object = None, what: str = ""
) -> httpx.Response:
    """GET with retries; HTTP errors other than transient ones raise with the server's message."""

    def once() -> httpx.Response:
        r = http.get(path, params=params)
        if r.status_code in (429, 502, 503, 504):
            raise ApiError(status_code=r.status_code, body=r.text[:500])
        if r.status_code == 401:
            raise ApiError(status_code=401, body="unauthorized")
        r.raise_for_status()
        return r

    return call(config, once, what or f"GET {path}")


def get_json(
    config: LabelStudioConfig, http: httpx.Client, path: str, params: object = None, what: str = ""
) -> object:
    return get_response(config, http, path, params, what).json()


def server_time(response: httpx.Response) -> datetime | None:
    """When the server began answering ``response``, by its own clock (the ``Date`` header, whole
    seconds, less the time the exchange took): a lower bound, as the update stamps it writes use that
    clock. None without a readable ``Date``."""
    date = response.headers.get("date")
    if not date:
        return None
    try:
        stamp = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp - response.elapsed


def list_tasks(
    config: LabelStudioConfig,
    http: httpx.Client,
    project_id: int,
    query: dict | None = None,
    page_size: int = 2000,
) -> list[dict]:
    """Every task of a project (id, data, updated_at, counts), optionally filtered by a Data Manager query."""
    import json

    out: list[dict] = []
    page = 1
    while True:
        params = {"project": project_id, "page": page, "page_size": page_size, "fields": "task_only"}
        if query:
            params["query"] = json.dumps(query)
        try:
            body = get_json(config, http, "/api/tasks", params, "list tasks")
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 404:  # past the last page
                break
            raise
        tasks = body["tasks"] if isinstance(body, dict) else body
        out.extend(tasks)
        total = body.get("total") if isinstance(body, dict) else None
        if not tasks or len(tasks) < page_size or (total is not None and len(out) >= total):
            break
        page += 1
    return out
