"""A real HTTP server on loopback that speaks the OpenAI Chat Completions API.

The demo's stand-in teacher serves through it, and tests, benchmarks and flow runs use it where
they need a teacher or a student endpoint without a model: it listens on a free port, answers
``POST /v1/chat/completions`` (and ``GET /v1/models``) with real JSON over real sockets, so the
official ``openai`` client, its timeouts, connection pooling and error mapping are exercised for real.

>>> from aescot.demo.chat_server import chat_server, oracle
>>> with chat_server(oracle({item_id: answer}), latency=0.05) as srv:
...     client = openai.OpenAI(base_url=srv.base_url, api_key="x")

What it answers is decided by a *responder*: a function of the parsed request
(:class:`ChatRequest`) returning reply text, an answer dict (rendered as a rationale in the
``<think>..</think><answer>{json}</answer>`` format, or as JSON when the request asks for
structured output), or a :class:`Failure`. Ready-made responders: :func:`oracle` (the right
answer per item, wrong on chosen samples), :func:`echo_given_answer` (answer-driven
prompts) and :func:`garbage`. Failures can also be scripted for the next N requests with
:meth:`ChatServer.fail_next` (429 with Retry-After, 500, timeout, garbage, malformed JSON,
dropped connection).

Item and sample are read from the ``X-Aescot-Item-Id`` / ``X-Aescot-Sample-Index`` headers
the aescot teacher client sends, so responders can key on them.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

from aescot.vocab import DIMENSIONS, LETTERS

FailureKind = Literal["429", "500", "503", "timeout", "garbage", "bad_json", "disconnect", "400"]


@dataclass(frozen=True)
class Failure:
    """A scripted failure. ``timeout`` holds the request for ``hang_s`` (longer than the client waits)."""

    kind: FailureKind
    retry_after: float | None = None
    hang_s: float = 30.0


Reply = str | Mapping[str, Any] | Failure
Responder = Callable[["ChatRequest"], Reply]


@dataclass
class ChatRequest:
    """One request as the server saw it."""

    body: dict[str, Any]
    headers: dict[str, str]  # lower-case names
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages") or []

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def item_id(self) -> str | None:
        return self.headers.get("x-aescot-item-id")

    @property
    def sample_index(self) -> int | None:
        value = self.headers.get("x-aescot-sample-index")
        return int(value) if value and value.isdigit() else None

    @property
    def text(self) -> str:
        """All text of all messages, joined by newlines."""
        out = []
        for msg in self.messages:
            content = msg.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.extend(p.get("text", "") for p in content if p.get("type") == "text")
        return "\n".join(out)

    @property
    def image_urls(self) -> list[str]:
        """Image URLs in the order they appear."""
        return [
            p["image_url"]["url"]
            for msg in self.messages
            if isinstance(msg.get("content"), list)
            for p in msg["content"]
            if p.get("type") == "image_url"
        ]

    @property
    def wants_json_schema(self) -> bool:
        rf = self.body.get("response_format") or {}
        return rf.get("type") in ("json_schema", "json_object")

    def given_answer(self) -> dict[str, Any] | None:
        """The answer embedded in an answer-driven prompt (the last JSON object with an "acceptable" key;
        the student question's format example comes before it)."""
        for match in reversed(list(re.finditer(r"\{\"acceptable\".*?\}\}", self.text, re.DOTALL))):
            try:
                return json.loads(match.group(0))
            except json.JSONDecodeError:
                continue
        return None


# --- responders ------------------------------------------------------------------------------------


def rationale_text(answer: Mapping[str, Any]) -> str:
    """A plausible rationale walking each candidate through the four dimensions to ``answer``."""
    dims = answer.get("dimensions") or {}
    lines = []
    for letter in LETTERS:
        flagged = set(dims.get(letter) or [])
        parts = [
            f"{d} {'fails: visible defect compared with the source' if d in flagged else 'passes'}"
            for d in DIMENSIONS
        ]
        lines.append(f"Candidate {letter}: " + "; ".join(parts) + ".")
    acceptable = list(answer.get("acceptable") or [])
    if acceptable:
        lines.append(
            f"Acceptable: {', '.join(acceptable)}. {answer.get('best')} keeps the product most faithful "
            "and the scene most natural."
        )
    else:
        lines.append("No candidate is free of defects, so none is acceptable.")
    return "\n".join(lines)


def render(answer: Mapping[str, Any], as_json: bool = False) -> str:
    """An answer as a reply: ``<think>..</think><answer>{json}</answer>``, or structured JSON."""
    ans = {
        "acceptable": list(answer.get("acceptable") or []),
        "best": answer.get("best"),
        "dimensions": {k: list((answer.get("dimensions") or {}).get(k) or []) for k in LETTERS},
    }
    if as_json:
        return json.dumps({"reasoning": rationale_text(ans), "answer": ans})
    return f"<think>{rationale_text(ans)}</think>\n<answer>{json.dumps(ans)}</answer>"


def wrong_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A different answer: best moved to another letter (or A made acceptable when none was)."""
    acceptable = list(answer.get("acceptable") or [])
    best = answer.get("best")
    if best is None:
        return {"acceptable": ["A"], "best": "A", "dimensions": {k: [] for k in LETTERS}}
    other = next(letter for letter in LETTERS if letter != best)
    return {
        "acceptable": sorted(set(acceptable) | {other}),
        "best": other,
        "dimensions": {k: list((answer.get("dimensions") or {}).get(k) or []) for k in LETTERS},
    }


def oracle(
    answers: Mapping[str, Mapping[str, Any]],
    wrong: Callable[[str, int], bool] | set[tuple[str, int]] | None = None,
    default: Mapping[str, Any] | None = None,
) -> Responder:
    """Answer each item (by ``X-Aescot-Item-Id``) with ``answers[item]``; a wrong answer for the
    (item, sample) pairs in ``wrong``. Unknown items get ``default`` (or "nothing acceptable")."""
    is_wrong = (lambda i, s: (i, s) in wrong) if isinstance(wrong, set) else (wrong or (lambda i, s: False))
    fallback = default or {"acceptable": [], "best": None, "dimensions": {k: [] for k in LETTERS}}

    def respond(req: ChatRequest) -> Reply:
        ans = answers.get(req.item_id or "", fallback)
        return wrong_answer(ans) if is_wrong(req.item_id or "", req.sample_index or 0) else ans

    return respond


def echo_given_answer(req: ChatRequest) -> Reply:
    """Explain the answer an answer-driven prompt carries; "nothing acceptable" when there is none."""
    return req.given_answer() or {"acceptable": [], "best": None, "dimensions": {k: [] for k in LETTERS}}


def garbage(req: ChatRequest) -> Reply:
    """Text with no answer in it."""
    return "I cannot help with screening these images."


# --- the server ------------------------------------------------------------------------------------


class ChatServer:
    """The server; use :func:`chat_server` or ``with ChatServer(...) as srv:``.

    ``latency`` (seconds) is added to every reply; ``api_key`` (if set) is required as a
    Bearer token; ``structured_outputs=False`` makes it refuse ``response_format`` with a 400
    like servers without JSON-schema support; ``send_usage=False`` leaves token usage out of replies.
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        structured_outputs: bool = True,
        send_usage: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
    ):
        self.responder: Responder = responder or echo_given_answer
        self.latency = latency
        self.api_key = api_key
        self.structured_outputs = structured_outputs
        self.send_usage = send_usage
        self.keep_requests = keep_requests
        self.requests: list[ChatRequest] = []
        self.failure_rule: Callable[[ChatRequest], Failure | None] | None = None
        self._script: list[Failure] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._count = 0
        self._in_flight = 0
        self.max_in_flight = 0
        self.unauthorized = 0  # requests refused with 401
        self._httpd = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="chat-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # scripting
    def fail_next(
        self, kind: FailureKind, times: int = 1, retry_after: float | None = None, hang_s: float = 30.0
    ) -> None:
        """The next ``times`` chat requests fail this way (in arrival order)."""
        with self._lock:
            self._script.extend([Failure(kind, retry_after, hang_s)] * times)

    @property
    def in_flight(self) -> int:
        """Chat requests being handled right now (``max_in_flight``: the most at once so far)."""
        return self._in_flight

    @property
    def calls(self) -> int:
        """Chat requests received so far (failed ones included)."""
        return self._count

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._count = 0
            self.max_in_flight = 0

    # request handling (called from handler threads)
    def _next_failure(self, req: ChatRequest) -> Failure | None:
        with self._lock:
            self._count += 1
            if self.keep_requests:
                self.requests.append(req)
            if self._script:
                return self._script.pop(0)
        return self.failure_rule(req) if self.failure_rule else None

    def _completion(self, req: ChatRequest, content: str) -> dict[str, Any]:
        prompt_tokens = max(1, len(req.text) // 4) + 85 * len(req.image_urls)
        completion_tokens = max(1, len(content) // 4)
        out = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if not self.send_usage:
            del out["usage"]
        return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of concurrent connects must not overflow the backlog
    allow_reuse_address = True


def _error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _make_handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = (
            True  # headers and body go out in separate writes: no 40 ms delayed-ACK stall
        )

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None
        ) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": "aescot-test", "object": "model", "created": 0, "owned_by": "aescot"}
                        ],
                    },
                )
            elif self.path.rstrip("/") in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._send(404, _error(404, f"no route {self.path}", "not_found_error"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, _error(404, f"no route {self.path}", "not_found_error"))
                return
            if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                with server._lock:
                    server.unauthorized += 1
                self._send(401, _error(401, "Incorrect API key provided.", "invalid_request_error"))
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, _error(400, "request body is not JSON", "invalid_request_error"))
                return
            req = ChatRequest(body, {k.lower(): v for k, v in self.headers.items()})
            with server._lock:
                server._in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server._in_flight)
            try:
                self._chat(req)
            finally:
                with server._lock:
                    server._in_flight -= 1

        def _chat(self, req: ChatRequest) -> None:
            body = req.body
            failure = server._next_failure(req)
            if server.latency:
                time.sleep(server.latency)
            if body.get("stream"):
                self._send(
                    400,
                    _error(400, "streaming is not supported by this test server", "invalid_request_error"),
                )
                return
            if req.wants_json_schema and not server.structured_outputs:
                self._send(
                    400,
                    _error(
                        400,
                        "response_format json_schema is not supported by this server",
                        "invalid_request_error",
                    ),
                )
                return
            reply: Reply = failure if failure is not None else server.responder(req)
            if isinstance(reply, Failure):
                self._fail(reply, req)
                return
            content = reply if isinstance(reply, str) else render(reply, as_json=req.wants_json_schema)
            self._send(200, server._completion(req, content))

        def _fail(self, failure: Failure, req: ChatRequest) -> None:
            kind = failure.kind
            if kind == "429":
                headers = (
                    {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
                )
                self._send(429, _error(429, "Rate limit reached, slow down.", "rate_limit_error"), headers)
            elif kind in ("500", "503"):
                self._send(int(kind), _error(int(kind), "The server had an error.", "server_error"))
            elif kind == "400":
                self._send(400, _error(400, "Invalid request.", "invalid_request_error"))
            elif kind == "timeout":
                server._stopping.wait(failure.hang_s)
                try:
                    self._send(200, server._completion(req, "too late"))
                except OSError:
                    pass
            elif kind == "garbage":
                self._send(200, server._completion(req, "\x00\x07 lorem ipsum ~~ <answer>{oops"))
            elif kind == "bad_json":
                self._send(200, b'{"id": "chatcmpl-x", "choices": [ this is not json')
            elif kind == "disconnect":
                self.close_connection = True
                self.connection.shutdown(2)

    return Handler


@contextmanager
def chat_server(responder: Responder | None = None, **kwargs: Any) -> Iterator[ChatServer]:
    """Run a :class:`ChatServer` for the duration of the block; yields it (``.base_url``)."""
    srv = ChatServer(responder, **kwargs).start()
    try:
        yield srv
    finally:
        srv.stop()
