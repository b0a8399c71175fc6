"""The async teacher client against the real loopback server: retries, Retry-After, timeouts, fallbacks."""

import asyncio
import time

import pytest

from aescot.demo.chat_server import chat_server, oracle
from aescot.teacher.client import TeacherClient, TeacherFatalError
from aescot.teacher.config import TeacherNotConfigured, TeacherSettings
from aescot.teacher.parse import parse_answer
from aescot.teacher.prompts import teacher_prompt

ANS = {"acceptable": ["A"], "best": "A", "dimensions": {"A": [], "B": ["placement_layout"], "C": [], "D": []}}
MSGS = teacher_prompt("blind").messages(["data:image/png;base64,AA"] * 5)
HDR = {"X-Aescot-Item-Id": "it", "X-Aescot-Sample-Index": "0"}


def settings(srv, **kw):
    base = {
        "base_url": srv.base_url,
        "model": "m",
        "api_key": "k",
        "timeout_s": 1.0,
        "retry_initial_wait_s": 0.01,
        "retry_max_wait_s": 2.0,
        "max_attempts": 4,
    }
    return TeacherSettings(**{**base, **kw})


async def complete_all(s, n=1):
    async with TeacherClient(s) as client:
        return await asyncio.gather(*[client.complete(MSGS, HDR) for _ in range(n)])


@pytest.fixture
def srv():
    with chat_server(oracle({"it": ANS})) as s:
        yield s


@pytest.mark.parametrize("kind", ["500", "503", "timeout", "bad_json", "disconnect"])
def test_transient_failures_are_retried(srv, kind):
    srv.fail_next(kind, times=2, hang_s=3)
    [res] = asyncio.run(complete_all(settings(srv, timeout_s=0.4)))
    assert res.error is None and res.attempts == 3
    assert parse_answer(res.text) == ANS


def test_gives_up_after_max_attempts_with_a_clear_error(srv):
    srv.fail_next("500", times=10)
    [res] = asyncio.run(complete_all(settings(srv, max_attempts=3)))
    assert res.text is None and res.attempts == 3
    assert res.error.startswith("InternalServerError (HTTP 500)")


def test_retry_after_is_honoured_and_pauses_everyone(srv):
    srv.fail_next("429", times=1, retry_after=0.6)
    t0 = time.monotonic()
    results = asyncio.run(complete_all(settings(srv, concurrency=4, retry_initial_wait_s=0.0), n=4))
    assert all(r.error is None for r in results)
    # the 429'd request waited its 0.6 s; requests after the 429 were held back too
    later = max(r.received_at for r in srv.requests)
    assert later - srv.requests[0].received_at >= 0.55
    assert time.monotonic() - t0 >= 0.55
    assert sum(r.attempts for r in results) == 5


def test_garbage_is_returned_not_retried(srv):
    srv.fail_next("garbage")
    [res] = asyncio.run(complete_all(settings(srv)))
    assert res.error is None and res.attempts == 1 and "<think>" not in res.text


def test_bad_request_is_not_retried(srv):
    srv.fail_next("400", times=3)
    [res] = asyncio.run(complete_all(settings(srv)))
    assert res.attempts == 1 and "HTTP 400" in res.error


def test_structured_output_falls_back_to_text_once():
    with chat_server(oracle({"it": ANS}), structured_outputs=False) as srv:
        results = asyncio.run(complete_all(settings(srv, concurrency=1), n=3))
        assert [r.structured for r in results] == [False] * 3
        assert all(parse_answer(r.text) == ANS for r in results)
        with_format = [r for r in srv.requests if "response_format" in r.body]
        assert len(with_format) == 1 and srv.calls == 4  # one refused probe, then text only


def test_structured_output_used_when_supported(srv):
    [res] = asyncio.run(complete_all(settings(srv)))
    assert res.structured and res.text.lstrip().startswith("{")
    assert srv.requests[0].body["response_format"]["json_schema"]["name"] == "screening_answer"


def test_concurrency_is_bounded():
    with chat_server(oracle({"it": ANS}), latency=0.1) as srv:
        asyncio.run(complete_all(settings(srv, concurrency=3), n=12))
        assert srv.calls == 12 and srv.max_in_flight == 3


def test_wrong_key_is_fatal_and_does_not_echo_the_key():
    with chat_server(oracle({}), api_key="right-key") as srv:
        with pytest.raises(TeacherFatalError, match="AESCOT_TEACHER_BASE_URL") as info:
            asyncio.run(complete_all(settings(srv, api_key="sk-wrong-SECRET-123")))
        assert "sk-wrong-SECRET-123" not in str(info.value)
        assert srv.unauthorized == 1  # not retried


def test_unconfigured_settings_say_what_to_set(monkeypatch):
    for var in (
        "AESCOT_TEACHER_BASE_URL",
        "AESCOT_TEACHER_MODEL",
        "AESCOT_TEACHER_API_KEY",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(TeacherNotConfigured, match="AESCOT_TEACHER_BASE_URL.*AESCOT_TEACHER_MODEL"):
        TeacherSettings().require()
    monkeypatch.setenv("AESCOT_TEACHER_BASE_URL", "ftp://x")
    monkeypatch.setenv("AESCOT_TEACHER_MODEL", "m")
    with pytest.raises(TeacherNotConfigured, match="http"):
        TeacherSettings().require()


def test_settings_from_env_with_openai_key_fallback(monkeypatch):
    monkeypatch.setenv("AESCOT_TEACHER_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("AESCOT_TEACHER_MODEL", "qwen")
    monkeypatch.delenv("AESCOT_TEACHER_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-openai-var")
    s = TeacherSettings().require()
    assert s.api_key.get_secret_value() == "sk-from-openai-var"
    assert "sk-from-openai-var" not in repr(s) and "sk-from-openai-var" not in s.model_dump_json()
    monkeypatch.setenv("AESCOT_TEACHER_API_KEY", "sk-own")
    assert TeacherSettings().api_key.get_secret_value() == "sk-own"
