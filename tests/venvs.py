"""Small venvs for consumers that pin their own libraries (old ``datasets``, verl), built once per machine.

Each lives under ``.cache/venvs/<name>``, is built under a file lock (parallel workers and runs wait for
one build) and is reused while its stamp matches the requested installs. A failed install fails the test:
these are real parts, not optional extras.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cached_venv(name: str, installs: list[list[str]]) -> Path:
    """The python of venv ``name`` after ``pip install <args>`` for each entry of ``installs``, in order."""
    venv = REPO / ".cache" / "venvs" / name
    stamp, wanted = venv / ".aescot-stamp", json.dumps(installs)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != wanted:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            for args in installs:
                done = subprocess.run(
                    [str(venv / "bin" / "pip"), "install", "-q", *args],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert done.returncode == 0, f"venv {name}: pip install {args} failed:\n{done.stderr[-3000:]}"
            stamp.write_text(wanted)
    return venv / "bin" / "python"
