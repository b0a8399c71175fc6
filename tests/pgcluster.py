"""A throwaway PostgreSQL cluster on a free loopback port (Debian's ``postgresql`` binaries), for the
tests and benches that run Label Studio on PostgreSQL.

PostgreSQL refuses to run as root: as root, the cluster is created and run as ``nobody`` (its data
dir lies in a fresh ``/tmp`` folder that user owns); otherwise as the current user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from aescot.labelstudio.server import PostgresDatabase, free_port

INSTALL = "apt-get install postgresql (Debian; scripts/setup.sh does it when root)"


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries here."""


def bindir() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (``$AESCOT_PG_BIN``, PATH, or Debian's)."""
    explicit = os.environ.get("AESCOT_PG_BIN")
    candidates = [Path(explicit)] if explicit else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for d in candidates:
        if all((d / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return d
    raise PostgresMissing(f"no PostgreSQL server binaries (initdb, pg_ctl, postgres); {INSTALL}")


class PgCluster:
    """``initdb`` once, then ``start()`` / ``stop(mode)`` / ``query(sql)`` on a fixed loopback port."""

    def __init__(
        self, user: str = "labelstudio", password: str = "aescot-pg-test", name: str = "labelstudio"
    ):
        self.bin = bindir()
        self.run_as = "nobody" if os.geteuid() == 0 else None
        self.base = Path(tempfile.mkdtemp(prefix="aescot-pg-"))
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = free_port()
        self.database = PostgresDatabase(port=self.port, name=name, user=user, password=password)
        pwfile = self.base / "pw"
        pwfile.write_text(password)
        if self.run_as:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-U", user, f"--pwfile={pwfile}", "--auth=scram-sha-256",
            "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        pwfile.unlink()
        self.start()
        self.query(f"CREATE DATABASE {name}", db="postgres")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kw = {"user": self.run_as} if self.run_as else {}
        return subprocess.run(
            [str(self.bin / tool), *args], capture_output=True, text=True, check=check, cwd=self.base, **kw
        )

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120", "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def query(self, sql: str, db: str | None = None) -> str:
        """One SQL statement through ``psql`` over TCP; its unaligned output."""
        psql = shutil.which("psql") or str(self.bin / "psql")
        env = dict(os.environ, PGPASSWORD=self.database.password.get_secret_value())
        args = [
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.database.user,
            "-d",
            db or self.database.name,
        ]
        out = subprocess.run(
            [psql, *args, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return out.stdout.strip()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
