"""Locating and running the local server."""

from __future__ import annotations

from pathlib import Path

import pytest

from aescot.labelstudio.server import ServerNotFound, find_binary, server_status, stop_server


def test_missing_server_gives_install_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("AESCOT_LABEL_STUDIO_BIN", str(tmp_path / "nope"))
    with pytest.raises(ServerNotFound, match="AESCOT_LABEL_STUDIO_BIN"):
        find_binary()
    monkeypatch.delenv("AESCOT_LABEL_STUDIO_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerNotFound, match=r"aescot\[server\]"):
        find_binary()


@pytest.mark.labelstudio
def test_running_server_is_recorded_in_its_data_dir_without_secrets(labelstudio_server):
    data_dir = labelstudio_server.cfg.data_dir
    status = server_status(data_dir)
    assert status is not None and status.url == labelstudio_server.url
    recorded = (data_dir / "aescot-server.json").read_text()
    assert labelstudio_server.token.get_secret_value() not in recorded
    assert labelstudio_server.token.get_secret_value() not in repr(status)
    # credentials reach the child through its environment, not its command line
    proc_file = Path(f"/proc/{status.pid}/cmdline")
    cmdline = proc_file.read_bytes().decode(errors="replace") if proc_file.exists() else ""
    assert labelstudio_server.token.get_secret_value() not in cmdline
    assert labelstudio_server.cfg.password.get_secret_value() not in cmdline


def test_stop_server_without_a_server_is_a_no_op(tmp_path):
    assert stop_server(tmp_path) is False
