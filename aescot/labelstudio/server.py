"""A local Label Studio server for the embedded default: SQLite, a data dir, local files.

The server lives in its own virtual environment (it is ~1 GB of Django and pins its own
dependencies), so it is found as an executable: ``$AESCOT_LABEL_STUDIO_BIN``, else
``label-studio`` on ``PATH``.

First start on an empty data dir runs the migrations (~60 s). A started-and-stopped data
dir is kept as a *template* (per executable, user and token) and copied for every later
fresh start, which then takes seconds.

Credentials go to the child through its environment, never its command line (which any
local user can read in the process list) and never into logs written here.

Local files: the document root is the dataset root; :mod:`aescot.labelstudio.project`
creates the Local Files storage on ``<root>/images`` only, and Label Studio serves a file
only when it lies under a storage path of a project the user may access.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, Field, SecretStr, model_validator

from aescot.errors import ConfigError, ServiceUnavailable

INSTALL_HINT = (
    "install the Label Studio server in its own virtual environment and point AESCOT_LABEL_STUDIO_BIN at it: "
    "`python -m venv ~/.venvs/labelstudio && ~/.venvs/labelstudio/bin/pip install label-studio==1.23.2 && "
    "export AESCOT_LABEL_STUDIO_BIN=~/.venvs/labelstudio/bin/label-studio` "
    "(or `pip install 'aescot[server]'` into this environment)"
)
PID_FILE = "aescot-server.json"
LOG_FILE = "aescot-server.log"


class ServerNotFound(ConfigError, RuntimeError):
    """No Label Studio executable could be located."""


class ServerStartError(ServiceUnavailable, RuntimeError):
    """The server process exited or did not become healthy in time."""


DATABASE_ENV = "AESCOT_LABEL_STUDIO_DATABASE"
DATABASE_RECORD = "aescot-database.json"  # which database a dataset's embedded server uses (no password)


class PostgresDatabase(BaseModel):
    """A PostgreSQL database for the local server instead of its SQLite file (Label Studio's
    ``DJANGO_DB=default`` with ``POSTGRE_*``). Also accepts a URL: ``postgresql://user:pass@host:port/name``."""

    host: str = "127.0.0.1"
    port: int = 5432
    name: str = "labelstudio"
    user: str = "labelstudio"
    password: SecretStr = SecretStr("")

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        from urllib.parse import unquote, urlsplit

        url = urlsplit(value)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "a database URL starts with postgresql:// (postgresql://user:pass@host:port/name)"
            )
        out: dict[str, object] = {}
        if url.hostname:
            out["host"] = url.hostname
        if url.port:
            out["port"] = url.port
        if url.path.strip("/"):
            out["name"] = unquote(url.path.strip("/"))
        if url.username:
            out["user"] = unquote(url.username)
        if url.password:
            out["password"] = SecretStr(unquote(url.password))
        return out

    def env(self) -> dict[str, str]:
        return {
            "DJANGO_DB": "default",
            "POSTGRE_HOST": self.host,
            "POSTGRE_PORT": str(self.port),
            "POSTGRE_NAME": self.name,
            "POSTGRE_USER": self.user,
            "POSTGRE_PASSWORD": self.password.get_secret_value(),
        }

    def __repr__(self) -> str:  # never show the password
        return (
            f"PostgresDatabase(host={self.host!r}, port={self.port}, name={self.name!r}, user={self.user!r})"
        )

    def describe(self) -> str:
        """Where it is, without the password: ``PostgreSQL user@host:port/name``."""
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.name}"


class LocalServerConfig(BaseModel):
    """How to run a local Label Studio. Credentials are only used at first initialisation."""

    data_dir: Path = Field(description="Label Studio's data dir (SQLite database, media, exports)")
    document_root: Path = Field(description="LOCAL_FILES_DOCUMENT_ROOT: the dataset root (or a parent of it)")
    host: str = "127.0.0.1"
    port: int = 0  # 0 = pick a free port
    username: str = "admin@localhost"
    password: SecretStr = SecretStr("aescot-local-admin")
    token: SecretStr = SecretStr("aescot-local-token-0123456789abcdef")
    binary: str | None = None
    template_cache: Path | None = Field(
        default=None, description="where initialised data-dir templates are kept (default ~/.cache/aescot)"
    )
    startup_timeout_s: float = 240.0
    database: PostgresDatabase | None = Field(
        default=None,
        description="PostgreSQL instead of the data dir's SQLite file (the default); fields or a "
        "postgresql://user:pass@host:port/name URL. The first start on an empty database runs the migrations",
    )
    extra_env: dict[str, str] = Field(
        default_factory=dict,
        description="more server settings, e.g. USE_DEFAULT_BANNED_SUBNETS=false to let it reach a MinIO on loopback",
    )


@dataclass
class RunningServer:
    """A started server: where to reach it and how to stop it."""

    url: str
    token: SecretStr
    pid: int
    data_dir: Path
    document_root: Path
    log_path: Path

    def __repr__(self) -> str:  # never show the token
        return f"RunningServer(url={self.url!r}, pid={self.pid}, data_dir={str(self.data_dir)!r})"

    def stop(self, timeout_s: float = 30.0) -> None:
        stop_pid(self.pid, timeout_s)
        (self.data_dir / PID_FILE).unlink(missing_ok=True)


def find_binary(explicit: str | None = None) -> str:
    """The ``label-studio`` executable: explicit, ``$AESCOT_LABEL_STUDIO_BIN``, or on PATH."""
    for candidate in (explicit, os.environ.get("AESCOT_LABEL_STUDIO_BIN")):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise ServerNotFound(
                f"Label Studio executable {candidate!r} does not exist or is not executable; " + INSTALL_HINT
            )
    found = shutil.which("label-studio")
    if found:
        return found
    raise ServerNotFound(
        "no Label Studio server found (AESCOT_LABEL_STUDIO_BIN unset, `label-studio` not on "
        "PATH); " + INSTALL_HINT
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _server_env(cfg: LocalServerConfig, data_dir: Path) -> dict[str, str]:
    home = data_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        HOME=str(home),
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        DJANGO_DB="sqlite",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(Path(cfg.document_root).resolve()),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LABEL_STUDIO_USERNAME=cfg.username,
        LABEL_STUDIO_PASSWORD=cfg.password.get_secret_value(),
        LABEL_STUDIO_USER_TOKEN=cfg.token.get_secret_value(),
        PYTHONUNBUFFERED="1",
    )
    if cfg.database is not None:
        env.update(cfg.database.env())
    env.update(cfg.extra_env)
    return env


def _spawn(cfg: LocalServerConfig, binary: str, data_dir: Path, port: int) -> tuple[subprocess.Popen, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / LOG_FILE
    cmd = [
        binary,
        "start",
        "--no-browser",
        "--internal-host",
        cfg.host,
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--enable-legacy-api-token",
        "--log-level",
        "WARNING",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            env=_server_env(cfg, data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc, log_path


def wait_healthy(
    url: str,
    timeout_s: float,
    proc: subprocess.Popen | None = None,
    log_path: Path | None = None,
    token: SecretStr | None = None,
) -> None:
    """Poll ``GET /health`` (and, with a token, an authenticated call) until both answer 200."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(timeout=5.0) as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
                raise ServerStartError(f"label-studio exited with code {proc.returncode}; log tail:\n{tail}")
            try:
                r = http.get(f"{url}/health")
                if r.status_code == 200:
                    if token is None:
                        return
                    r = http.get(
                        f"{url}/api/current-user/whoami",
                        headers={"Authorization": f"Token {token.get_secret_value()}"},
                    )
                    if r.status_code == 200:
                        return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.5)
    raise ServerStartError(f"Label Studio at {url} not healthy after {timeout_s:.0f} s (last: {last})")


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL). Quiet if already gone."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:  # not our child: poll for existence
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.2)


def _template_dir(cfg: LocalServerConfig, binary: str) -> Path:
    cache = cfg.template_cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aescot"
    ident = hashlib.sha256(
        json.dumps(
            [
                str(Path(binary).resolve()),
                cfg.username,
                cfg.password.get_secret_value(),
                cfg.token.get_secret_value(),
            ]
        ).encode()
    ).hexdigest()[:16]
    return Path(cache) / f"labelstudio-template-{ident}"


def ensure_template(cfg: LocalServerConfig, binary: str) -> Path:
    """An initialised (migrated, admin user + token created) data dir to copy. Built once (~60 s) per
    (executable, user, password, token): the server sets credentials only when it creates the user."""
    template = _template_dir(cfg, binary)
    if (template / "label_studio.sqlite3").exists():
        return template
    building = template.with_name(template.name + f".building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    proc, log_path = _spawn(cfg, binary, building, free_port(cfg.host))
    url = f"http://{cfg.host}:{proc.args[proc.args.index('--port') + 1]}"
    try:
        wait_healthy(url, cfg.startup_timeout_s, proc, log_path, cfg.token)
    finally:
        stop_pid(proc.pid)
    shutil.rmtree(building / "home", ignore_errors=True)
    (building / LOG_FILE).unlink(missing_ok=True)
    try:
        os.replace(building, template)
    except OSError:  # another process built it first
        shutil.rmtree(building, ignore_errors=True)
    return template


def start_server(cfg: LocalServerConfig) -> RunningServer:
    """Start Label Studio on ``cfg.data_dir`` (copied from the template when empty) and wait until healthy.

    If a server recorded in the data dir is still alive and healthy, it is reused.
    """
    binary = find_binary(cfg.binary)
    data_dir = Path(cfg.data_dir).resolve()
    running = server_status(data_dir)
    if running is not None:
        return running
    if cfg.database is None and not (data_dir / "label_studio.sqlite3").exists():
        # SQLite: copy the initialised template; PostgreSQL: the server migrates its database itself
        template = ensure_template(cfg, binary)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(template, data_dir, dirs_exist_ok=True)
    port = cfg.port or free_port(cfg.host)
    proc, log_path = _spawn(cfg, binary, data_dir, port)
    url = f"http://{cfg.host}:{port}"
    try:
        wait_healthy(url, cfg.startup_timeout_s, proc, log_path, cfg.token)
    except BaseException:
        stop_pid(proc.pid)
        raise
    (data_dir / PID_FILE).write_text(
        json.dumps({"pid": proc.pid, "url": url, "document_root": str(Path(cfg.document_root).resolve())})
    )
    return RunningServer(url, cfg.token, proc.pid, data_dir, Path(cfg.document_root).resolve(), log_path)


def server_status(data_dir: Path) -> RunningServer | None:
    """The server recorded in ``data_dir`` if its process is alive and answers /health, else None."""
    pid_file = Path(data_dir) / PID_FILE
    if not pid_file.exists():
        return None
    info = json.loads(pid_file.read_text())
    try:
        os.kill(info["pid"], 0)
        wait_healthy(info["url"], 3.0)
    except (ProcessLookupError, PermissionError, ServerStartError):
        pid_file.unlink(missing_ok=True)
        return None
    return RunningServer(
        info["url"],
        SecretStr(""),
        info["pid"],
        Path(data_dir),
        Path(info["document_root"]),
        Path(data_dir) / LOG_FILE,
    )


def stop_server(data_dir: Path) -> bool:
    """Stop the server recorded in ``data_dir``; True if one was running."""
    running = server_status(data_dir)
    if running is None:
        return False
    running.stop()
    return True


class LocalServer:
    """A restartable local server on a fixed port: ``start()``, ``stop()``, ``restart()``.

    The port is chosen on first start and kept, so clients configured with :attr:`url` keep working
    across restarts (tests stop it mid-push and start it again).
    """

    def __init__(self, cfg: LocalServerConfig):
        self.cfg = cfg if cfg.port else cfg.model_copy(update={"port": free_port(cfg.host)})
        self.running: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.port}"

    @property
    def token(self) -> SecretStr:
        return self.cfg.token

    @property
    def document_root(self) -> Path:
        return Path(self.cfg.document_root).resolve()

    def start(self) -> RunningServer:
        self.running = start_server(self.cfg)
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
            self.running = None

    def restart(self) -> RunningServer:
        self.stop()
        return self.start()


# --- the embedded default of one dataset: `aescot labelstudio start` ---------------------------------

LOCAL_DIR = ".labelstudio"
CREDENTIALS_FILE = "aescot-credentials.json"


def local_server_config(dataset_root: Path, port: int = 8080, binary: str | None = None) -> LocalServerConfig:
    """The embedded server of a local dataset: data dir ``<root>/.labelstudio``, document root = the dataset root.

    The admin password and API token are generated once and kept in ``<root>/.labelstudio/`` (mode 0600);
    ``LABEL_STUDIO_API_KEY`` / ``LABEL_STUDIO_PASSWORD`` set them instead when present at the first start.
    ``AESCOT_LABEL_STUDIO_DATABASE`` (a ``postgresql://user:pass@host:port/name`` URL, from the
    environment so the password stays out of command lines and logs) puts the server's database on
    PostgreSQL instead of the data dir's SQLite file.
    """
    import secrets

    root = Path(dataset_root).resolve()
    data_dir = root / LOCAL_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    cred_path = data_dir / CREDENTIALS_FILE
    if not cred_path.exists():
        creds = {
            "username": "admin@localhost",
            "password": os.environ.get("LABEL_STUDIO_PASSWORD") or secrets.token_urlsafe(12),
            "token": os.environ.get("LABEL_STUDIO_API_KEY") or secrets.token_hex(20),
        }
        fd = os.open(cred_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds, fh)
    creds = json.loads(cred_path.read_text())
    return LocalServerConfig(
        data_dir=data_dir,
        document_root=root,
        port=port,
        binary=binary,
        username=creds["username"],
        password=SecretStr(creds["password"]),
        token=SecretStr(creds["token"]),
        database=_recorded_database(data_dir, os.environ.get(DATABASE_ENV) or None),
    )


def _recorded_database(data_dir: Path, url: str | None) -> PostgresDatabase | None:
    """The database this dataset's server was first started on is the one it keeps: a later start
    without ``AESCOT_LABEL_STUDIO_DATABASE``, or with another database, would show annotators an
    empty server (SQLite) or another project's tasks, so it is refused. The record holds no password."""
    try:
        database = PostgresDatabase.model_validate(url) if url else None
    except ValueError as exc:  # the message only: the value holds a password
        msg = exc.errors()[0]["msg"] if hasattr(exc, "errors") else "not a postgresql:// URL"
        raise ConfigError(f"{DATABASE_ENV}: {msg}") from None
    record = data_dir / DATABASE_RECORD
    wanted = database.describe() if database is not None else "SQLite"
    if record.exists():
        first = json.loads(record.read_text())["database"]
        if first != wanted:
            how = (
                f"set {DATABASE_ENV} to that database's URL" if first != "SQLite" else f"unset {DATABASE_ENV}"
            )
            raise ConfigError(
                f"the Label Studio of {data_dir.parent} keeps its data in {first}, not {wanted}; {how}"
            )
    elif (data_dir / "label_studio.sqlite3").exists() and database is not None:
        raise ConfigError(
            f"the Label Studio of {data_dir.parent} keeps its data in SQLite ({data_dir}); unset {DATABASE_ENV} "
            "or give the dataset a new root"
        )
    else:
        record.write_text(json.dumps({"database": wanted}))
    return database


def local_connection(dataset_root: Path) -> tuple[str, SecretStr] | None:
    """URL and token of the embedded server running for this dataset, if any."""
    data_dir = Path(dataset_root).resolve() / LOCAL_DIR
    running = server_status(data_dir) if data_dir.is_dir() else None
    cred_path = data_dir / CREDENTIALS_FILE
    if running is None or not cred_path.exists():
        return None
    return running.url, SecretStr(json.loads(cred_path.read_text())["token"])
