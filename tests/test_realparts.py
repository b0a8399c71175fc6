"""The one rule for real parts: absent skips locally and fails in CI; broken fails everywhere."""

import pytest

from tests import realparts


@pytest.mark.parametrize(
    "env,required",
    [({}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "false"}, False)]
    + [({"AESCOT_REQUIRE_LABEL_STUDIO": "1"}, True)],
)
def test_absent_part_skips_locally_and_fails_in_ci(monkeypatch, env, required):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("AESCOT_REQUIRE_LABEL_STUDIO", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert realparts.required() is required
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="Chromium"):
        realparts.absent("Chromium", "not on PATH")
    with pytest.raises(outcome, match="moto"):
        realparts.need("no_such_module_xyz", "the S3 server (moto)", "the dev extra")


def test_broken_part_fails_everywhere_with_its_log(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("AESCOT_REQUIRE_LABEL_STUDIO", raising=False)
    with pytest.raises(
        pytest.fail.Exception, match=r"(?s)Label Studio did not start: exit 3.*database locked"
    ):
        realparts.broken("Label Studio", "exit 3", "...\ndatabase locked\n")


def test_optional_extra_skips_naming_the_extra(monkeypatch):
    monkeypatch.setenv("CI", "true")  # optional extras skip even in CI
    with pytest.raises(pytest.skip.Exception, match="optional extra 'server'"):
        realparts.optional("no_such_module_xyz", "server")
    assert realparts.optional("json", "none").dumps([]) == "[]"
