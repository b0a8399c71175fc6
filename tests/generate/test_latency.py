"""The ``latency`` benchmark backend: registered like the real ones, deterministic small images,
and it waits the GPU time it is configured with."""

import json
import time

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from aescot.generate import (
    GenerateConfig,
    LatencyConfig,
    LatencyGenerator,
    SyntheticGenerator,
    generate_candidates,
    make_generator,
)
from aescot.generate.base import SourceImage
from aescot.generate.groups import GROUPS
from aescot.generate.reproduce import generator_for, reproduce_candidate
from aescot.samples import render_product_shot


@pytest.fixture
def source():
    img, mask = render_product_shot(7, 160)
    return SourceImage("cd" * 32, img, mask, "Calmora tablets")


def test_selected_by_backend_name_like_the_real_backends():
    gen = make_generator(GenerateConfig(backend="latency"))
    assert isinstance(gen, LatencyGenerator) and gen.name == "latency"
    cfg = GenerateConfig.model_validate_json(
        GenerateConfig(backend="latency", latency=LatencyConfig(seconds_per_call=1.5)).model_dump_json()
    )
    assert cfg.backend == "latency" and cfg.latency.seconds_per_call == 1.5
    with pytest.raises(ValidationError):
        LatencyConfig(seconds_per_call=-1)
    with pytest.raises(ValidationError):
        GenerateConfig(backend="gpu-sleep")


def test_small_deterministic_images_with_the_synthetic_plan(source):
    gen = LatencyGenerator(LatencyConfig(seconds_per_call=0, size=64))
    a = gen.generate(source, [0, 1, 2, 3], [5, 6, 7, 8])
    b = gen.generate(source, [0, 1, 2, 3], [5, 6, 7, 8])
    assert all(np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b))
    assert all(g.image.size == (64, 64) and g.image.mode == "RGB" for g in a)
    assert [g.params["size"] for g in a] == [64] * 4
    # the planted answers are the synthetic backend's for the same source, so items get gold
    specs = SyntheticGenerator().slot_specs(source.source_id)
    assert [g.known_acceptable for g in a] == [s.clean for s in specs]
    other_seed = gen.generate(source, [0], [99])[0]
    assert not np.array_equal(np.asarray(other_seed.image), np.asarray(a[0].image))
    # the size is what it produces; the wait is not
    assert gen.fingerprint() == LatencyGenerator(LatencyConfig(seconds_per_call=3, size=64)).fingerprint()
    assert gen.fingerprint() != LatencyGenerator(LatencyConfig(size=96)).fingerprint()


def test_each_call_waits_at_least_its_configured_device_time(source):
    gen = LatencyGenerator(LatencyConfig(seconds_per_call=0.3, seconds_per_image=0.05))
    assert gen.wait_seconds(4) == pytest.approx(0.5)
    started = time.perf_counter()
    gen.generate(source, [0, 1, 2, 3], [1, 2, 3, 4])
    assert time.perf_counter() - started >= 0.5  # a lower bound only: the wait is not skipped
    started = time.process_time()
    gen.generate(source, [0, 1, 2, 3], [1, 2, 3, 4])
    assert time.process_time() - started < 0.5  # the wait is a sleep: it holds no CPU


def test_through_the_stage_and_reproduced_without_the_wait(ingested):
    store = ingested
    cfg = GenerateConfig(backend="latency", latency=LatencyConfig(seconds_per_call=0.01))
    report = generate_candidates(store, cfg)
    assert (report.generated, report.candidates, report.skipped) == (5, 20, 0)
    cands = store.read("candidates")
    assert {c["generator"] for c in cands} == {"latency"}
    assert all(c["width"] <= 64 and c["height"] <= 64 for c in cands)
    assert sorted((c["source_id"], json.loads(c["params"])["slot"]) for c in cands) == sorted(
        (s["source_id"], slot) for s in store.read("sources") for slot in range(4)
    )
    # another wait is the same work: nothing is generated again
    again = generate_candidates(store, GenerateConfig(backend="latency"))
    assert (again.generated, again.skipped) == (0, 5)
    group = store.read(GROUPS.name)[0]
    assert generator_for(group, {}).config.seconds_per_call == 0
    for c in cands[:4]:
        assert reproduce_candidate(store, c["candidate_id"]).identical


def test_cli_backend_option(ingested):
    from aescot.cli.main import app

    res = CliRunner().invoke(
        app, ["generate", "--root", ingested.root, "--backend", "latency", "--seconds-per-call", "0"]
    )
    assert res.exit_code == 0, res.output
    assert "5 generated" in res.output and ingested.count("candidates") == 20
    res = CliRunner().invoke(app, ["generate", "--root", ingested.root, "--backend", "gpu-sleep"])
    assert res.exit_code != 0 and "latency" in res.output
