"""The Prefect API of the local entry points (the demo, ``python -m flows.build_screening_set``): the
ephemeral one, given the time a busy machine needs.

Prefect starts a temporary API server in a subprocess when ``PREFECT_API_URL`` is unset and waits
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20 s by default) for it: on a loaded laptop
that is too short and the run dies with a 40-line traceback. :func:`ensure_prefect_api` starts it
up front with a longer wait (default 180 s), retries once, and otherwise raises
:class:`PrefectUnavailable` whose message is one line with the fix. The flow runs of the same
process then reuse that server.
"""

from __future__ import annotations

import os

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

    last = ""
    for _ in range(attempts):
        server = SubprocessASGIServer()
        try:
            server.start(timeout=timeout_s)
            return server.api_url
        except Exception as exc:  # noqa: BLE001 - any start failure gets the same one-line fix
            last = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            server.stop()
    raise PrefectUnavailable(
        f"the ephemeral Prefect API did not start ({attempts} tries, {timeout_s} s each: {last}); "
        + fix_hint(timeout_s)
    )
