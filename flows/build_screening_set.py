"""The ``build-screening-set`` flow: advance every stage by what is ready, repeat nothing.

    ingest new sources -> generate 4 candidates (+ dedupe) -> screening items -> push to Label Studio
    -> collect finished annotations -> teacher rationales (when configured) -> filter -> export

Tasks work on batches and pass ids and the store's root URI, never pixels. Each stage is
idempotent in the store, so a retried task or a re-run after a crash cannot duplicate work.
Run it locally (``python -m flows.build_screening_set --help``), serve it (``flows/serve.py``) or
deploy it (``prefect.yaml``); trigger with ``prefect deployment run 'build-screening-set/<name>'``.
"""

# No `from __future__ import annotations` here: Prefect builds the parameter schema from the
# annotations when the flow is loaded from its file by a worker, so they must be real objects.
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from aescot.store import DatasetStore
from flows import tasks
from flows.limits import GPU_LIMIT, TEACHER_LIMIT, ensure_limits
from flows.summary import summary_markdown


@flow(name="build-screening-set", log_prints=True, validate_parameters=True)
def build_screening_set(
    root: Annotated[
        str, Field(min_length=1, description="dataset root: a folder or an fsspec URI")
    ] = "aescot-data",
    sources: Annotated[list[str] | None, Field(description="folders, globs or manifests to ingest")] = None,
    generator: Annotated[
        Literal["synthetic", "diffusers", "latency"],
        Field(description="latency: a benchmark stand-in that waits seconds_per_call like a GPU call"),
    ] = "synthetic",
    model: Annotated[
        str | None, Field(description="diffusers model id or folder (generator=diffusers)")
    ] = None,
    steps: Annotated[int, Field(ge=1, le=200)] = 30,
    seconds_per_call: Annotated[
        float, Field(ge=0, le=600, description="generator=latency: seconds one generator call waits")
    ] = 0.5,
    batch_size: Annotated[int, Field(ge=1, le=1000, description="sources per generation task")] = 32,
    gpu_slots: Annotated[int, Field(ge=1, le=64, description="generation tasks at once across all runs")] = 1,
    labelstudio: Annotated[bool, Field(description="push items to Label Studio and collect labels")] = True,
    project: Annotated[str, Field(min_length=1)] = "aescot screening",
    gold_share: Annotated[float, Field(ge=0, le=0.5, description="share of gold (known-answer) tasks")] = 0.1,
    teacher: Annotated[
        Literal["auto", "on", "off"], Field(description="auto: on when AESCOT_TEACHER_BASE_URL is set")
    ] = "auto",
    samples: Annotated[int, Field(ge=1, le=16, description="teacher samples per item")] = 4,
    teacher_slots: Annotated[int, Field(ge=1, le=64)] = 1,
    min_consistency: Annotated[float, Field(ge=0, le=1)] = 0.8,
    export_to: Annotated[str | None, Field(description="export folder/URI (default: <root>/export)")] = None,
) -> dict[str, Any]:
    """Advance the screening dataset at ``root`` by one step of every stage."""
    log = get_run_logger()
    store = DatasetStore(root)
    log.info("store checked: %s", tasks.require_healthy_store(store.root))  # refuse a damaged store
    ensure_limits({GPU_LIMIT: gpu_slots, TEACHER_LIMIT: teacher_slots})
    run: dict[str, Any] = {}

    if sources:
        run["ingest"] = tasks.ingest_sources(store.root, sources)

    pending = tasks.sources_without_items(store.root)
    batches = [pending[i : i + batch_size] for i in range(0, len(pending), batch_size)]
    gen_config = tasks.generation_config(generator, model, steps, seconds_per_call)
    ensure_limits(dict.fromkeys(tasks.batch_locks(store.root, batches, gen_config), 1))  # one client
    made = []
    for wave in range(0, len(batches), gpu_slots):  # no more batches in flight than GPU slots: none idles
        futures = tasks.generate_batch.map(
            store.root, batches[wave : wave + gpu_slots], gen_config, gold_share
        )
        made += [f.result() for f in futures]
    run["generate"] = tasks.merge_counts(made) if made else "nothing pending"

    if labelstudio:
        run["push"] = tasks.push_items(store.root, project, gold_share)
        run["collect"] = tasks.collect_labels(store.root, project, gold_share)
    else:
        run["push"] = run["collect"] = "skipped (labelstudio=False)"

    if tasks.teacher_enabled(teacher):
        run["rationales"] = tasks.write_rationales(store.root, samples)
        run["filter"] = tasks.filter_items(store.root, min_consistency, samples)
    else:
        run["rationales"] = run["filter"] = "skipped (no teacher configured: set AESCOT_TEACHER_BASE_URL)"

    run["export"] = tasks.export(store.root, export_to or f"{store.root}/export")
    create_markdown_artifact(
        summary_markdown(store, run),
        key="build-screening-set-summary",
        description="counts per stage, rejects, agreement, consistency",
    )
    log.info("run summary: %s", run)
    return run


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.build_screening_set``: one run of the flow on this machine (ephemeral Prefect API
    unless ``PREFECT_API_URL`` is set). Exit 0 when the run completed, 1 when it failed, 2 for bad
    parameters, 3 when no Prefect API could be started."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(
        prog="python -m flows.build_screening_set",
        description="Advance the screening dataset at --root by one step of every stage.",
    )
    ap.add_argument("--root", default="aescot-data", help="dataset root: a folder or an fsspec URI")
    ap.add_argument("--sources", nargs="*", default=None, help="folders, globs or manifests to ingest")
    ap.add_argument("--no-labelstudio", action="store_true", help="generate only; no push or collect")
    ap.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="any other flow parameter, as for `prefect deployment run -p`, e.g. -p batch_size=16",
    )
    args = ap.parse_args(argv)
    params: dict[str, Any] = {"root": args.root, "sources": args.sources}
    if args.no_labelstudio:
        params["labelstudio"] = False
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"-p {item!r}: expected KEY=JSON")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value  # a bare string, as `prefect deployment run -p` takes it
    from prefect.exceptions import ParameterTypeError

    from flows.prefect_api import PrefectUnavailable, ensure_prefect_api, quiet_prefect

    quiet_prefect()

    try:  # before any server starts: a bad parameter is a one-line error at once
        build_screening_set.validate_parameters(params)
    except (ParameterTypeError, TypeError) as exc:
        problems = [line.strip(" -") for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
        print(f"error: invalid parameters: {'; '.join(problems)}", file=sys.stderr)
        return 2
    try:
        ensure_prefect_api()
    except PrefectUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    state = build_screening_set(**params, return_state=True)
    if not state.is_completed():
        print(f"error: the flow run ended {state.name}: {state.message}", file=sys.stderr)
        return 1
    print(json.dumps(state.result(), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
