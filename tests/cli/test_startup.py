"""The CLI starts without the heavy libraries: each command imports what it uses when it runs.

(Seconds belong in ``bench/cli_startup.py``; this checks the cause, which is deterministic.)
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pyarrow", "numpy", "datasets", "torch", "diffusers", "transformers", "openai", "prefect",
         "label_studio_sdk", "fsspec", "PIL", "jsonschema", "httpx", "lance")  # fmt: skip


def test_help_imports_none_of_the_heavy_libraries():
    code = (
        "import sys; from aescot.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('\\n' + __import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "ingest" in done.stdout and "export" in done.stdout


def test_status_on_a_missing_root_says_so_before_importing_the_store(tmp_path):
    missing = tmp_path / "no-such-root"
    code = (
        "import sys; from aescot.cli.main import app\n"
        f"try:\n    app(['status', '--root', {str(missing)!r}])\nexcept SystemExit as e:\n    code = e.code\n"
        f"print('\\n' + __import__('json').dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [2, []]
    assert "no dataset at" in done.stderr + done.stdout and not missing.exists()


def test_a_command_help_imports_none_of_the_heavy_libraries():
    code = (
        "import sys; from aescot.cli.main import app\n"
        "try:\n    app(['status', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print('\\n' + __import__('json').dumps([m for m in {HEAVY!r} + ('pydantic',) if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # pydantic too: typer 0.29 builds a pydantic TypeAdapter per parameter at each start (pinned below it)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "--root" in done.stdout
