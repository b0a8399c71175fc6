"""The local server's database setting: SQLite by default, PostgreSQL from fields or a URL (the password
never shown)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from aescot.labelstudio.server import LocalServerConfig, PostgresDatabase, _server_env


def test_default_stays_sqlite(tmp_path):
    cfg = LocalServerConfig(data_dir=tmp_path / "ls", document_root=tmp_path)
    env = _server_env(cfg, tmp_path / "ls")
    assert cfg.database is None and env["DJANGO_DB"] == "sqlite"
    assert not any(k.startswith("POSTGRE_") for k in env)


def test_a_postgresql_url_becomes_label_studios_settings(tmp_path):
    cfg = LocalServerConfig(
        data_dir=tmp_path / "ls",
        document_root=tmp_path,
        database="postgresql://ls:s%40cret@db.local:6543/lsdb",
    )
    env = _server_env(cfg, tmp_path / "ls")
    assert {k: v for k, v in env.items() if k.startswith(("POSTGRE_", "DJANGO_DB"))} == {
        "DJANGO_DB": "default",
        "POSTGRE_HOST": "db.local",
        "POSTGRE_PORT": "6543",
        "POSTGRE_NAME": "lsdb",
        "POSTGRE_USER": "ls",
        "POSTGRE_PASSWORD": "s@cret",
    }
    assert "s@cret" not in repr(cfg) and "s@cret" not in repr(cfg.database)


def test_other_database_urls_are_refused():
    with pytest.raises(ValidationError, match="postgresql://"):
        PostgresDatabase.model_validate("mysql://u:p@h/db")
