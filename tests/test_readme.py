"""The README works as pasted, and every command it documents is covered by a test.

The ```bash blocks run unchanged in a clean shell (``bash -euo pipefail``, PATH without any venv,
temporary HOME and PREFECT_HOME) in a copy of the checkout (tracked and untracked files, the two
venvs linked), so the README's relative paths (``demo-data``, ``deploy-data``) land in the copy.
Ports the README would take (Prefect's 4200, the demo's Label Studio 8080) are moved to free ones
through the variables the README and the demo themselves honour: ``PREFECT_PORT``, ``AESCOT_DEMO_PORT``.

``COVERAGE`` maps each command of the README (bash-block lines by section, inline commands) to the
test that runs it; a command missing from the table, a table entry no longer in the README, or a named
test that does not exist fails ``test_every_readme_command_is_covered``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HERE = "tests/test_readme.py"
SETUP_TEST = f"{HERE}::test_setup_block_runs_the_demo_as_pasted"
DEPLOY_TEST = f"{HERE}::test_deployment_blocks_run_as_pasted_and_the_second_run_repeats_nothing"
TEACHER_TEST = f"{HERE}::test_teacher_block_against_a_loopback_endpoint"
DEV_TEST = f"{HERE}::test_benchmarks_block_runs_as_pasted"
INVALID_TEST = f"{HERE}::test_invalid_annotations_block_on_the_demo_data"
DOCTOR = "`aescot doctor` and `aescot repair`"
DOCTOR_TEST = f"{HERE}::test_doctor_block_on_the_demo_data"
TRAIN_TEST = f"{HERE}::test_trainer_block_prints_the_plugin_files"
LS_CLI_TEST = "tests/labelstudio/test_cli.py::test_setup_push_collect_agreement_with_url_and_token_from_env"
S3_TEST = "tests/test_readme_s3.py::test_object_storage_block_runs_as_pasted"
CI = "CI: .ci/run runs `bash scripts/test.sh` (this very suite), so a test does not recurse into it"

INLINE = "(inline)"
# Every command the README documents, by the section it is in -> the test that runs it (commands
# normalised: shlex tokens, comments dropped). Inline `code` commands are under INLINE.
COVERAGE: dict[str, dict[str, str]] = {
    "Set up": {
        "bash scripts/demo.sh": SETUP_TEST,
        "bash scripts/test.sh": CI,
    },
    "The labeling page (what annotators see)": {
        ".venv/bin/python scripts/render_annotation.py": (
            "tests/labelstudio/test_mapping.py::test_committed_labeling_config_is_the_generated_one"
        ),
    },
    "Invalid annotations": {  # run as pasted on the demo's dataset and its Label Studio
        ".venv/bin/aescot collect --root demo-data": INVALID_TEST,
        ".venv/bin/aescot status --root demo-data": INVALID_TEST,
    },
    "The browser test and its screenshots": {
        "AESCOT_TEST_WORKERS=0 AESCOT_TEST_ARTEFACTS=/tmp/aescot-artefacts bash scripts/test.sh -s "
        "tests/labelstudio/test_render.py": "tests/labelstudio/test_render.py",
    },
    "One run of the flow on this machine": {
        ".venv/bin/python -m flows.build_screening_set --root demo-data --sources demo-data/incoming/manifest.csv "
        "-p teacher=off": "tests/flows/test_local_entry.py::test_a_local_run_advances_the_store_and_prints_its_summary",
    },
    "The flow and its deployment": {  # the three blocks, run as pasted in one shell
        "source .venv/bin/activate": DEPLOY_TEST,
        "export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false": DEPLOY_TEST,
        "export PREFECT_PORT=${PREFECT_PORT:-4200}": DEPLOY_TEST,
        "export PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api": DEPLOY_TEST,
        "export PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE=prefect.server.concurrency.lease_storage.filesystem": (
            DEPLOY_TEST
        ),
        "prefect server start --host 127.0.0.1 --port $PREFECT_PORT > prefect-server.log 2>&1 &": DEPLOY_TEST,
        "SERVER_PID=$!": DEPLOY_TEST,
        "prefect server status --wait --timeout 300": DEPLOY_TEST,
        "prefect work-pool create aescot-process --type process --overwrite": DEPLOY_TEST,
        "prefect --no-prompt deploy --name local": DEPLOY_TEST,
        "prefect worker start --pool aescot-process > prefect-worker.log 2>&1 &": DEPLOY_TEST,
        "WORKER_PID=$!": DEPLOY_TEST,
        "prefect deployment run build-screening-set/local --watch -p root=deploy-data "
        '-p sources=["demo-data/incoming/manifest.csv"] -p labelstudio=false': DEPLOY_TEST,
        "aescot status --root deploy-data": DEPLOY_TEST,
        "ls deploy-data/tables/*.lance/_versions/": DEPLOY_TEST,
        "kill -KILL $WORKER_PID": DEPLOY_TEST,
        "kill $SERVER_PID": DEPLOY_TEST,
    },
    "Generating with a real model (GPU)": {  # no GPU and no model hub here: the parts, by name
        "export AESCOT_MODEL=${AESCOT_MODEL:-stable-diffusion-v1-5/stable-diffusion-inpainting}": (
            "tests/generate/test_diffusers.py::test_four_candidates_reproducible_by_seed_with_the_product_kept"
        ),
        "bash scripts/demo.sh": "tests/generate/test_diffusers.py::test_missing_model_offline_fails_fast_with_a_fix",
    },
    "The teacher": {  # run as pasted against a loopback OpenAI-compatible server
        "export AESCOT_TEACHER_BASE_URL=${AESCOT_TEACHER_BASE_URL:-https://api.openai.com/v1}": TEACHER_TEST,
        "export AESCOT_TEACHER_MODEL=${AESCOT_TEACHER_MODEL:-gpt-4o}": TEACHER_TEST,
        ".venv/bin/aescot rationales --root demo-data --samples 4": TEACHER_TEST,
        ".venv/bin/aescot filter --root demo-data --min-consistency 0.8 --teacher-model $AESCOT_TEACHER_MODEL": (
            TEACHER_TEST
        ),
    },
    DOCTOR: {  # run as pasted on the demo's (healthy) dataset
        ".venv/bin/aescot doctor --root demo-data": DOCTOR_TEST,
        ".venv/bin/aescot doctor --root demo-data --quick": DOCTOR_TEST,
        ".venv/bin/aescot repair --root demo-data": DOCTOR_TEST,
    },
    "Training on the export": {
        ".venv/bin/python -m aescot.integrations verl": TRAIN_TEST,
        ".venv/bin/python -m aescot.integrations easyr1": TRAIN_TEST,
        ".venv/bin/python -m aescot.integrations easyr1-prompt": TRAIN_TEST,
    },
    "Tests and CI": {  # scripts/test.sh with pytest options passed on
        "bash scripts/test.sh": CI,
        "bash scripts/test.sh tests/test_ingest.py": CI,
        "bash scripts/test.sh -m not slow": CI,
        "AESCOT_TEST_WORKERS=0 bash scripts/test.sh -x": CI,
    },
    "Running at scale on object storage": {  # run as pasted against a moto server on a free port
        "S3_PORT=${S3_PORT:-9000}": S3_TEST,
        ".venv/bin/moto_server -H 127.0.0.1 -p $S3_PORT > moto.log 2>&1 &": S3_TEST,
        "S3_PID=$!": S3_TEST,
        "until curl -s -o /dev/null http://127.0.0.1:$S3_PORT; do sleep 0.5; done": S3_TEST,
        "export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "
        "AWS_DEFAULT_REGION=us-east-1": S3_TEST,
        ".venv/bin/python -c from aescot.samples import write_sample_sources as w; "
        "w('s3-sources', n=32, size=64)": S3_TEST,
        ".venv/bin/aescot ingest --root s3://aescot/screening s3-sources/manifest.csv": S3_TEST,
        ".venv/bin/python -m flows.build_screening_set --root s3://aescot/screening --no-labelstudio "
        "-p teacher=off": S3_TEST,
        ".venv/bin/aescot status --root s3://aescot/screening": S3_TEST,
        "kill $S3_PID": S3_TEST,
    },
    "Benchmarks": {
        ".venv/bin/python bench/ingest_throughput.py": DEV_TEST,
    },
    INLINE: {
        "prefect gcl update aescot-gpu --active-slots 0": (
            "tests/flows/test_ephemeral_leases.py::test_a_slot_held_without_a_lease_is_said_and_the_readme_command_frees_it"
        ),
        "aescot compact": "tests/cli/test_cli_store.py::test_compact_prints_fragments_and_files_before_and_after",
        "aescot --help": "tests/cli/test_startup.py::test_help_imports_none_of_the_heavy_libraries",
        "aescot generate --backend latency": "tests/generate/test_latency.py::test_cli_backend_option",
        "aescot status --help": "tests/cli/test_startup.py::test_a_command_help_imports_none_of_the_heavy_libraries",
        "aescot export OUT --as-of ID": (
            "tests/export/test_as_of.py::test_as_of_the_first_tag_writes_the_first_export_byte_for_byte"
        ),
        "aescot migrate ROOT": "tests/cli/test_cli_store.py::test_migrate_converts_once_then_refuses",
        "aescot filter --min-consistency 0.8": "tests/teacher/test_cli.py::test_rationales_then_filter",
        "aescot status": "tests/cli/test_cli_sources.py::test_ingest_prints_a_summary_and_rerun_adds_nothing",
        "aescot ingest <folder|glob|manifest.csv|.parquet>": (
            "tests/cli/test_cli_sources.py::test_ingest_prints_a_summary_and_rerun_adds_nothing"
        ),
        "aescot generate [--backend synthetic|diffusers --model ID]": (
            "tests/generate/test_cli.py::test_generate_then_dedupe_on_an_ingested_store"
        ),
        "aescot dedupe": "tests/generate/test_cli.py::test_generate_then_dedupe_on_an_ingested_store",
        "aescot labelstudio start|stop|status|setup": (
            "tests/labelstudio/test_cli.py::test_embedded_server_start_status_stop"
        ),
        "aescot push": LS_CLI_TEST,
        "aescot collect": LS_CLI_TEST,
        "aescot agreement": LS_CLI_TEST,
        "aescot rationales": "tests/teacher/test_cli.py::test_rationales_then_filter",
        "aescot export OUT": "tests/export/test_export.py::test_cli_export",
        "aescot eval DATA --base-url URL --model M": (
            "tests/export/test_eval.py::test_cli_eval_writes_reports_without_the_key"
        ),
        "bash scripts/demo.sh": SETUP_TEST,
        "prefect server start": DEPLOY_TEST,
        "aescot labelstudio start --root ROOT": (
            "tests/labelstudio/test_postgres.py::test_cli_embedded_server_on_postgresql_from_the_environment"
        ),
        "aescot labelstudio start --root deploy-data": (
            "tests/labelstudio/test_cli.py::test_embedded_server_start_status_stop"
        ),
        "python -m flows.serve --name local": (
            "tests/flows/test_deployment.py::test_deployment_run_completes_and_advances_the_store"
        ),
        "prefect --no-prompt deploy --name gpu": DEPLOY_TEST,  # the test deploys `gpu` too
        "vllm serve <VLM>": "external: vLLM's own command; the loopback chat server stands in for it",
        "aescot eval": "tests/export/test_eval.py::test_cli_eval_writes_reports_without_the_key",
        ".venv/bin/aescot labelstudio stop --root demo-data": (
            "tests/labelstudio/test_cli.py::test_embedded_server_start_status_stop"
        ),
        "kill -9": "tests/faults/test_kill_matrix.py::test_kill_then_rerun_loses_and_duplicates_nothing",
        "aescot doctor": "tests/faults/test_store_damage.py::test_healthy_store_doctor_exits_0_and_checks_every_file",
        "aescot repair": (
            "tests/faults/test_store_damage.py::test_repair_cli_says_which_rows_to_rebuild_and_the_stage_rebuilds_them"
        ),
        "aescot ingest": "tests/cli/test_cli_sources.py::test_ingest_prints_a_summary_and_rerun_adds_nothing",
        "aescot generate": "tests/generate/test_cli.py::test_generate_then_dedupe_on_an_ingested_store",
        "aescot labelstudio setup": LS_CLI_TEST,
        "prefect deployment run -p": DEPLOY_TEST,
        "aescot export OUT -f scores -f scores_sft": "tests/export/test_scores.py::test_cli_exports_the_score_formats",
    },
}

# Inline `code` counts as a command when it starts with one of these.
PROGRAMS = ("aescot", "prefect", "bash", "python", ".venv/bin/", "source", "export", "kill", "vllm", "ls")


# --- reading the README -----------------------------------------------------------------------------


@dataclass
class Block:
    heading: str
    line: int
    text: str

    def commands(self) -> list[str]:
        return commands_of(self.text)


def readme_blocks(text: str | None = None) -> list[Block]:
    """The ```bash blocks with the heading they sit under."""
    text = README.read_text() if text is None else text
    blocks, heading, fence = [], "", None
    for n, line in enumerate(text.splitlines(), 1):
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence = (line[3:].strip(), n, [])
        elif line.startswith("```"):
            lang, start, body = fence
            if lang == "bash":
                blocks.append(Block(heading, start, "\n".join(body) + "\n"))
            fence = None
        else:
            fence[2].append(line)
    return blocks


def blocks_under(heading: str) -> list[Block]:
    found = [b for b in readme_blocks() if b.heading == heading]
    assert found, f"README has no ```bash block under {heading!r}"
    return found


def normalise(command: str) -> str:
    return " ".join(shlex.split(command.replace("\\|", "|"), comments=True))


def commands_of(script: str) -> list[str]:
    """One entry per command line (continuations joined, comments dropped)."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        if norm := normalise(line):
            out.append(norm)
    return out


def inline_commands(text: str) -> list[str]:
    """Inline `code` outside fenced blocks that starts with a program name."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    found = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        if span.startswith(PROGRAMS) and " " in span:
            found.append(normalise(span))
    return found


def readme_commands() -> dict[str, list[str]]:
    """Commands by section: each bash block's under its heading, inline ones under INLINE."""
    text = README.read_text()
    found: dict[str, list[str]] = {}
    for block in readme_blocks(text):
        found.setdefault(block.heading, []).extend(block.commands())
    found[INLINE] = inline_commands(text)
    return {k: list(dict.fromkeys(v)) for k, v in found.items()}


# --- the coverage table -----------------------------------------------------------------------------


def _test_exists(node: str) -> bool:
    path, _, name = node.partition("::")
    file = REPO / path
    return file.is_file() and (
        not name or re.search(rf"^(async )?def {re.escape(name)}\(", file.read_text(), re.MULTILINE)
    )


def test_every_readme_command_is_covered():
    cmds = readme_commands()
    missing = [f"{s}: {c}" for s, cs in cmds.items() for c in cs if c not in COVERAGE.get(s, {})]
    assert not missing, "README commands with no test in tests/test_readme.py COVERAGE:\n" + "\n".join(
        missing
    )
    stale = [f"{s}: {c}" for s, cs in COVERAGE.items() for c in cs if c not in cmds.get(s, [])]
    assert not stale, "COVERAGE entries no longer in the README:\n" + "\n".join(stale)
    for section, table in COVERAGE.items():
        for cmd, node in table.items():
            if node.startswith("tests/"):
                assert _test_exists(node), f"{section}: {cmd!r} is mapped to {node}, which does not exist"
            elif node.startswith("CI:"):
                assert "bash scripts/test.sh" in (REPO / ".ci/run").read_text()
            else:
                assert node.startswith("external:"), node


def test_sections_mapped_here_are_run_here():
    """A section whose commands map to this module is one RUN_HERE runs; no other section maps here."""
    for section, table in COVERAGE.items():
        here = {node for node in table.values() if node.startswith(HERE)}
        if section in RUN_HERE:
            assert here <= {RUN_HERE[section]}, (section, here)
        elif section != INLINE:
            assert not here, f"section {section!r} maps to {here} but no test here runs its block"


def test_command_extraction_sees_continuations_comments_and_inline_code():
    text = "# T\n\n```bash\nfoo a \\\n  -p 'x=[\"y\"]'   # note\n\n# only a comment\n```\nrun `aescot push` or `prefect.yaml`\n"
    (block,) = readme_blocks(text)
    assert block.heading == "T" and block.commands() == ['foo a -p x=["y"]']
    assert inline_commands(text) == ["aescot push"]


RUN_HERE = {
    "Set up": SETUP_TEST,
    "The flow and its deployment": DEPLOY_TEST,
    "The teacher": TEACHER_TEST,
    "Invalid annotations": INVALID_TEST,
    DOCTOR: DOCTOR_TEST,
    "Training on the export": TRAIN_TEST,
    "Benchmarks": DEV_TEST,
}


# --- running blocks as pasted -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_path() -> str:
    """The caller's PATH without virtual environments (a fresh shell has none active)."""
    venv = os.environ.get("VIRTUAL_ENV")
    keep = []
    for part in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
        p = Path(part)
        if (p.parent / "pyvenv.cfg").exists() or (venv and part.startswith(venv)):
            continue
        keep.append(part)
    return os.pathsep.join(keep)


def _copy_checkout(dest: Path) -> None:
    """Tracked and untracked (not ignored) files of the working tree; the venvs linked, not copied."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        top = rel.split("/", 1)[0]
        src = REPO / rel
        if (top.startswith(".") and top not in {".ci", ".gitignore", ".github"}) or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    # The venvs are the ones this suite runs in: linked, never reinstalled (scripts/setup.sh, which the
    # demo calls, is idempotent by a stamp of pyproject.toml). Where that stamp is behind the copy's
    # pyproject.toml (an edit not yet installed), the clone gets its own stamp in a folder of links,
    # so setup.sh does not reinstall the shared venv through the link; CI installs first, so there
    # the stamps match and the venv is linked as it is.
    for venv, key in ((".venv", hashlib.sha256((dest / "pyproject.toml").read_bytes()).hexdigest()[:16]),):
        stamp = REPO / venv / ".aescot-stamp"
        if stamp.exists() and stamp.read_text().strip() == key:
            (dest / venv).symlink_to(REPO / venv)
            continue
        (dest / venv).mkdir()
        for entry in (REPO / venv).iterdir():
            if entry.name != ".aescot-stamp":
                (dest / venv / entry.name).symlink_to(entry)
        (dest / venv / ".aescot-stamp").write_text(key + "\n")
    ls_stamp = REPO / ".venv-labelstudio/.aescot-stamp"
    if not ls_stamp.exists() or ls_stamp.read_text().strip() != "label-studio==1.23.2":
        pytest.fail(".venv-labelstudio is not installed: run `bash scripts/setup.sh` first")
    (dest / ".venv-labelstudio").symlink_to(REPO / ".venv-labelstudio")


def _session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after "pid (comm)": state ppid pgrp session ...
            pids.append(int(stat.parent.name))
    return pids


def _kill_session(sid: int, grace_s: float = 20.0) -> None:
    """SIGTERM every process of the session, then SIGKILL what is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        pids = _session_pids(sid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.5)


class Clone:
    """A copy of the checkout and a clean environment in which README blocks run as pasted."""

    def __init__(self, base: Path):
        self.dir = base / "aescot"
        self.dir.mkdir()
        _copy_checkout(self.dir)
        home = base / "home"
        home.mkdir()
        self.env = {
            "PATH": _clean_path(),
            "HOME": str(home),
            "PREFECT_HOME": str(base / "prefect-home"),
            "LANG": "C.UTF-8",
            "COLUMNS": "160",
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "PREFECT_PORT": str(_free_port()),
            "AESCOT_DEMO_PORT": str(_free_port()),
            # A busy machine: let Prefect's clients wait longer for the server than their defaults.
            "PREFECT_API_REQUEST_TIMEOUT": "120",
        }
        if "CI" in os.environ:
            self.env["CI"] = os.environ["CI"]
        self.logs: list[Path] = []
        self.sessions: list[int] = []

    def run(self, name: str, script: str, timeout_s: float, env: dict[str, str] | None = None):
        """Run ``script`` with ``bash -euo pipefail`` in the clone; returns (returncode, output)."""
        path = self.dir.parent / f"{name}.sh"
        path.write_text(script)
        log = self.dir.parent / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["bash", "-euo", "pipefail", str(path)],
                cwd=self.dir,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.sessions.append(proc.pid)
            try:
                rc = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                _kill_session(proc.pid, grace_s=2)
                rc = proc.wait(30)
                out.write(f"\n[test_readme] killed after {timeout_s:.0f} s\n".encode())
        return rc, log.read_text(errors="replace")

    def report(self) -> str:
        """Tails of every script log and of the servers' logs in the clone, for a failure message."""
        parts = []
        extra = [
            self.dir / "prefect-server.log",
            self.dir / "prefect-worker.log",
            self.dir / "demo-data/.labelstudio/aescot-server.log",
        ]
        for log in [*self.logs, *extra]:
            if log.exists():
                parts.append(f"----- {log.name} (tail) -----\n{log.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        for sid in self.sessions:
            _kill_session(sid)
        demo = self.dir / "demo-data"
        if (demo / ".labelstudio").is_dir():  # the demo leaves its Label Studio running, by design
            subprocess.run(
                [str(self.dir / ".venv/bin/aescot"), "labelstudio", "stop", "--root", str(demo)],
                cwd=self.dir,
                env=self.env,
                capture_output=True,
                timeout=120,
                check=False,
            )
            pid_file = demo / ".labelstudio/aescot-server.json"
            if pid_file.exists():
                try:
                    os.kill(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
                except (ProcessLookupError, KeyError, ValueError):
                    pass


def script_of(blocks: list[Block], hooks: dict[int, str] | None = None, skip: set[str] = frozenset()) -> str:
    """The blocks' text as pasted, one after the other in one shell; ``hooks[i]`` runs after block i.

    Lines whose command is in ``skip`` are left out (and must map to another test in COVERAGE)."""
    parts = []
    for i, block in enumerate(blocks):
        text = block.text
        if skip:
            kept = [ln for ln in text.replace("\\\n", " ").splitlines() if normalise(ln) not in skip]
            text = "\n".join(kept) + "\n"
        parts.append(f"# ---- README line {block.line}: {block.heading}\n{text}")
        if hooks and i in hooks:
            parts.append(f"# ---- test hook\n{hooks[i]}\n")
    return "\n".join(parts)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The clone after the README's set-up block ran (`bash scripts/demo.sh`, as pasted)."""
    c = Clone(tmp_path_factory.mktemp("readme"))
    try:
        started = time.monotonic()
        setup = blocks_under("Set up")
        ci_only = {cmd for b in setup for cmd in b.commands() if COVERAGE["Set up"].get(cmd) == CI}
        rc, out = c.run("setup-block", script_of(setup, skip=ci_only), timeout_s=1500)
        c.setup_result = (rc, out, time.monotonic() - started)
        yield c
    finally:
        c.close()


def slow(test):
    """The README's end-to-end runs: slow, in one xdist worker (the clone is made once), and given
    40 minutes (the first one also runs the demo, ~5 minutes on two busy cores)."""
    return pytest.mark.slow(pytest.mark.xdist_group("readme")(pytest.mark.timeout(2400)(test)))


@slow
def test_setup_block_runs_the_demo_as_pasted(clone):
    rc, out, took = clone.setup_result
    print(f"\n[test_readme] set-up block (bash scripts/demo.sh): {took:.1f} s")
    assert rc == 0, clone.report()
    from aescot.store import DatasetStore

    demo = DatasetStore(clone.dir / "demo-data")
    assert demo.count("items") > 0, clone.report()
    assert (clone.dir / "demo-data/incoming/manifest.csv").is_file(), "the deployment block ingests this"
    assert "Label Studio" in out


@slow
def test_deployment_blocks_run_as_pasted_and_the_second_run_repeats_nothing(clone):
    assert clone.setup_result[0] == 0, "needs the set-up block's demo data:\n" + clone.report()
    from aescot.store import DatasetStore

    marks = clone.dir.parent / "marks"
    marks.mkdir()

    def stamp(name: str) -> str:
        return f'date +%s.%N > "{marks}/{name}"'

    # The GPU deployment of prefect.yaml deploys with the README's command (its pool made here).
    gpu = "prefect work-pool create aescot-gpu --type process --overwrite\nprefect --no-prompt deploy --name gpu"
    first, again, stop = blocks_under("The flow and its deployment")
    script = f"{stamp('start')}\n" + script_of(
        [first, again, stop],
        hooks={
            0: f"{stamp('first')}\ncp -r deploy-data/tables {marks}/tables-after-first",
            1: f"{stamp('second')}\n{gpu}",
        },
    )
    rc, out = clone.run("deployment-blocks", script, timeout_s=1800)
    assert rc == 0, clone.report()

    t = {k: float((marks / k).read_text()) for k in ("start", "first", "second")}
    print(
        f"\n[test_readme] deployment path: server start -> first run done {t['first'] - t['start']:.1f} s, "
        f"second run done {t['second'] - t['start']:.1f} s (second run alone {t['second'] - t['first']:.1f} s)"
    )
    store = DatasetStore(clone.dir / "deploy-data")
    shots = len((clone.dir / "demo-data/incoming/manifest.csv").read_text().strip().splitlines()) - 1
    assert shots > 0 and store.count("sources") == store.count("items") == shots, clone.report()
    assert store.count("candidates") == 4 * shots
    assert out.count("Flow run finished successfully in 'Completed'.") == 2, out[-4000:]
    # The second run wrote nothing: the same table files, byte for byte, none added.
    after_first = {k: v[0] for k, v in _tree(marks / "tables-after-first").items()}
    after_second = {k: v[0] for k, v in _tree(clone.dir / "deploy-data/tables").items()}
    assert after_second == after_first
    counts = re.findall(r"│ (sources|candidates|screening items)\s+│ (\d+)", out)
    # both runs' status show the same counts (status also lists each table's rows: same figures)
    expected = {("sources", str(shots)), ("candidates", str(4 * shots)), ("screening items", str(shots))}
    assert len(counts) >= 6 and set(counts) == expected, counts
    # Both deployments are registered, and the stop block left no worker or server behind.
    assert "build-screening-set/gpu" in out
    deadline = time.monotonic() + 60
    while _session_pids(clone.sessions[-1]) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _session_pids(clone.sessions[-1]), "the README's stop block left the worker or server running"


@slow
def test_teacher_block_against_a_loopback_endpoint(clone):
    assert clone.setup_result[0] == 0, "needs the set-up block's labelled demo data:\n" + clone.report()
    from aescot.demo.chat_server import chat_server, oracle
    from aescot.store import DatasetStore

    store = DatasetStore(clone.dir / "demo-data")
    labels = store.read("labels")
    assert labels, "the demo made no labels, so the README's teacher block has nothing to do"
    answers = {r["item_id"]: {k: r[k] for k in ("acceptable", "best", "dimensions")} for r in labels}
    model = "readme-loopback-teacher"
    with chat_server(oracle(answers)) as srv:
        env = {"AESCOT_TEACHER_BASE_URL": srv.base_url, "AESCOT_TEACHER_MODEL": model}
        rc, out = clone.run("teacher-block", script_of(blocks_under("The teacher")), timeout_s=900, env=env)
        assert rc == 0, clone.report()
        assert srv.calls >= 4 * len(labels) and "items decided" in out, out[-3000:]
    mine = [r for r in store.read("rationales") if r["teacher_model"] == model]
    assert len(mine) == 4 * len(labels) and all(r["format_ok"] for r in mine)
    assert store.count("selections") >= len(labels)


@slow
def test_invalid_annotations_block_on_the_demo_data(clone):
    assert clone.setup_result[0] == 0, "needs the set-up block's demo data:\n" + clone.report()
    rc, out = clone.run(
        "invalid-annotations-block", script_of(blocks_under("Invalid annotations")), timeout_s=600
    )
    assert rc == 0, clone.report()  # collect reaches the demo's Label Studio, still running
    assert re.search(r"invalid annotations\s+│ \d+", out), out[-3000:]


@slow
def test_doctor_block_on_the_demo_data(clone):
    assert clone.setup_result[0] == 0, "needs the set-up block's demo data:\n" + clone.report()
    rc, out = clone.run("doctor-block", script_of(blocks_under(DOCTOR)), timeout_s=600)
    assert rc == 0, clone.report()  # doctor exits 3 on any problem: the demo's store is healthy
    assert "nothing to repair" in out, out[-3000:]


@slow
def test_trainer_block_prints_the_plugin_files(clone):
    rc, out = clone.run("trainer-block", script_of(blocks_under("Training on the export")), timeout_s=300)
    assert rc == 0, clone.report()
    printed = [Path(line) for line in out.splitlines() if line.startswith("/")]
    names = [p.name for p in printed]
    assert names == ["verl_reward.py", "easyr1_reward.py", "easyr1_format_prompt.jinja"], out
    assert all(p.is_file() for p in printed)


@slow
def test_benchmarks_block_runs_as_pasted(clone):
    (block,) = blocks_under("Benchmarks")
    rc, out = clone.run("benchmarks-block", script_of([block]), timeout_s=900)
    assert rc == 0, clone.report()
    assert re.search(r"aescot ingest \(1 thread\)\s+[\d.]+\s+[\d.]+\s+[\d.]+", out), out[
        -2000:
    ]  # vs PIL decode
