"""The Prefect API of the local entry points (the demo, ``python -m flows.build_screening_set``): the
ephemeral one, given the time a busy machine needs.

Prefect starts a temporary API server in a subprocess when ``PREFECT_API_URL`` is unset and waits
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20 s by default) for it: on a loaded laptop
that is too short and the run dies with a 40-line traceback. :func:`ensure_prefect_api` starts it
up front with a longer wait (default 180 s), retries once, and otherwise raises
:class:`PrefectUnavailable` whose message is one line with the fix. The flow runs of the same
process then reuse that server. Every server started here keeps concurrency-slot leases in files
under ``PREFECT_HOME`` (:func:`flows.limits.persistent_leases`), and for the ephemeral one, which
runs no lease service, this process frees lapsed leases (:class:`flows.limits.LeaseReclaimer`): a
run killed while it held the GPU slot no longer blocks every later run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from aescot.errors import ServiceUnavailable

TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_S = 180


class PrefectUnavailable(ServiceUnavailable):
    """No Prefect API could be reached or started; the message says what to do."""


QUIET = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
"""Without these every Prefect call prints a telemetry traceback on a machine without internet."""


def quiet_prefect() -> None:
    """Default the environment to :data:`QUIET` (a person's own settings win)."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)


def fix_hint(timeout_s: int) -> str:
    return (
        f"raise {TIMEOUT_ENV} (it was {timeout_s}; e.g. export {TIMEOUT_ENV}=600) or run a Prefect server "
        "(`.venv/bin/prefect server start` in another shell, then "
        "`export PREFECT_API_URL=http://127.0.0.1:4200/api`) and run the command again"
    )


def ensure_prefect_api(attempts: int = 2) -> str:
    """The API URL the flow will use: ``PREFECT_API_URL`` when set, else a started ephemeral server."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    os.environ.setdefault(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    timeout_s = int(os.environ[TIMEOUT_ENV])
    from prefect.server.api.server import SubprocessASGIServer

    from flows.limits import FILE_LEASES, LEASE_STORAGE_SETTING, LeaseReclaimer, persistent_leases

    persistent_leases()  # slot leases in $PREFECT_HOME: the next run can free a killed run's slots
    last = ""
    for _ in range(attempts):
        server = SubprocessASGIServer()
        try:
            server.start(timeout=timeout_s)
            if os.environ[LEASE_STORAGE_SETTING] == FILE_LEASES:  # not for a person's own storage
                LeaseReclaimer().start()  # the ephemeral server runs no lease service: this process does
            return server.api_url
        except Exception as exc:  # noqa: BLE001 - any start failure gets the same one-line fix
            last = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            server.stop()
    raise PrefectUnavailable(
        f"the ephemeral Prefect API did not start ({attempts} tries, {timeout_s} s each: {last}); "
        + fix_hint(timeout_s)
    )


def start_prefect_server(
    env: dict[str, str], log_path: Path, timeout_s: float = 180, new_session: bool = False
) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` on a free loopback port, as users run it, with ``env`` (its
    ``PREFECT_HOME``); its output is appended to ``log_path``. Returns the process and its API URL
    once ``/health`` answers. A server that exits, or is not healthy within ``timeout_s`` (then
    killed), raises :class:`PrefectUnavailable`; the log says why."""
    import httpx

    from aescot.labelstudio.server import free_port
    from flows.limits import persistent_leases

    env = dict(env)
    persistent_leases(env)  # a restarted server still knows (and frees) a killed run's slot leases
    port = free_port()
    prefect = str(Path(sys.executable).with_name("prefect"))
    with open(log_path, "ab") as log:  # the server holds its own copy of the handle
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return proc, api
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise PrefectUnavailable(f"prefect server exited with code {proc.returncode} (log: {log_path})")
        time.sleep(0.5)
    proc.kill()
    raise PrefectUnavailable(f"prefect server not healthy after {timeout_s:.0f} s (log: {log_path})")
