"""The loopback Chat Completions server, driven by the official openai client."""

import json

import openai
import pytest

from aescot.demo.chat_server import chat_server, echo_given_answer, oracle, wrong_answer
from aescot.teacher.parse import parse_answer
from aescot.teacher.prompts import teacher_prompt

ANS = {
    "acceptable": ["B", "C"],
    "best": "C",
    "dimensions": {"A": ["lighting_shadow"], "B": [], "C": [], "D": []},
}


def ask(srv, item=None, sample=0, **kw):
    client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=5)
    headers = {"X-Aescot-Item-Id": item, "X-Aescot-Sample-Index": str(sample)} if item else {}
    return client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], extra_headers=headers, **kw
    )


def test_oracle_answers_per_item_and_wrong_on_chosen_samples():
    with chat_server(oracle({"it": ANS}, wrong={("it", 2)})) as srv:
        assert parse_answer(ask(srv, "it", 0).choices[0].message.content) == {
            **ANS,
            "dimensions": ANS["dimensions"],
        }
        wrong = parse_answer(ask(srv, "it", 2).choices[0].message.content)
        assert wrong == wrong_answer(ANS) and wrong["best"] != "C"
        assert srv.calls == 2 and srv.requests[0].item_id == "it" and srv.requests[1].sample_index == 2


def test_usage_and_models_endpoint():
    with chat_server(oracle({})) as srv:
        resp = ask(srv, "x")
        assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
        client = openai.OpenAI(base_url=srv.base_url, api_key="k")
        assert [m.id for m in client.models.list()] == ["aescot-test"]


def test_structured_output_is_json_when_asked_and_refused_when_unsupported():
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    with chat_server(oracle({"it": ANS})) as srv:
        body = json.loads(ask(srv, "it", response_format=fmt).choices[0].message.content)
        assert body["answer"]["best"] == "C" and "Candidate A" in body["reasoning"]
    with (
        chat_server(oracle({"it": ANS}), structured_outputs=False) as srv,
        pytest.raises(openai.BadRequestError, match="response_format"),
    ):
        ask(srv, "it", response_format=fmt)


def test_api_key_is_enforced():
    with chat_server(api_key="right") as srv, pytest.raises(openai.AuthenticationError):
        ask(srv)


@pytest.mark.parametrize(
    "kind, error",
    [
        ("429", openai.RateLimitError),
        ("500", openai.InternalServerError),
        ("503", openai.InternalServerError),
    ],
)
def test_scripted_http_failures_then_recovery(kind, error):
    with chat_server(oracle({})) as srv:
        srv.fail_next(kind, times=2, retry_after=1.5)
        for _ in range(2):
            with pytest.raises(error) as info:
                ask(srv)
        if kind == "429":
            assert info.value.response.headers["retry-after"] == "1.5"
        assert ask(srv).choices[0].message.content.startswith("<think>")


def test_timeout_and_garbage():
    with chat_server(oracle({})) as srv:
        srv.fail_next("timeout", hang_s=3)
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        srv.fail_next("garbage")
        assert "<think>" not in ask(srv).choices[0].message.content


def test_echo_reads_the_answer_of_an_answer_driven_prompt():
    msgs = teacher_prompt("answer_driven", ANS).messages(["data:image/png;base64,AA"] * 5)
    with chat_server(echo_given_answer) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k")
        out = client.chat.completions.create(model="m", messages=msgs).choices[0].message.content
        assert parse_answer(out) == ANS
        assert len(srv.requests[0].image_urls) == 5
