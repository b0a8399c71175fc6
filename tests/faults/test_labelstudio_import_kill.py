"""Label Studio SIGKILLed inside one large import call: every item still ends as exactly one task.

A loopback proxy sits between aescot and a real Label Studio. When the one bulk import of 240 tasks
passes through it, the proxy kills the server (its whole process group) either as soon as the
server starts answering — the tasks are committed, aescot never hears so ("committed but not
recorded") — or while the request is still being processed. A thread restarts the server on the
same port; the push, still inside the same import call's retry loop, must reconcile with what the
server holds and import only the rest.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections import Counter

import pytest

from aescot.labelstudio import LabelStudioConfig, push_items
from aescot.labelstudio.client import http_client, list_tasks
from aescot.labelstudio.mapping import ITEM_FIELD
from aescot.labelstudio.server import LocalServer, LocalServerConfig, ServerNotFound, find_binary
from aescot.store import DatasetStore
from tests.labelstudio.helpers import make_items

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]
N = 240


def _close(*socks: socket.socket) -> None:
    """Shut down first: a plain close() would not wake the other pump thread blocked in recv()."""
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


class KillingProxy:
    """Forwards TCP to the server; kills the server once, at the import call, at the chosen moment."""

    def __init__(self, server: LocalServer, moment: str):
        self.server, self.moment = server, moment
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.killed_at: float | None = None
        self.restarted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.cfg.port))
        except OSError:
            client.close()
            return
        state = {"import": False}
        threading.Thread(target=self._pump_up, args=(client, upstream, state), daemon=True).start()
        try:
            while data := upstream.recv(65536):
                if state["import"] and self.moment == "committed" and self.killed_at is None:
                    self._kill()  # the server answered: the tasks are in; the answer never arrives
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _pump_up(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        try:
            while data := client.recv(65536):
                if b"/import" in data and b"POST " in data:
                    state["import"] = True
                upstream.sendall(data)
                if state["import"] and self.moment == "in-flight" and self.killed_at is None:
                    time.sleep(0.02)
                    self._kill()
                    break
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _kill(self) -> None:
        self.killed_at = time.monotonic()
        pid = self.server.running.pid
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        self.server.running = None
        threading.Thread(target=self._restart, daemon=True).start()

    def _restart(self) -> None:
        time.sleep(1.0)
        self.server.start()
        self.restarted.set()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def own_server(tmp_path):
    """A Label Studio of this test's own (it gets killed), from the initialised template."""
    try:
        find_binary()
    except ServerNotFound as exc:
        if os.environ.get("AESCOT_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(str(exc))
        pytest.skip(f"no Label Studio server: {exc}")
    (tmp_path / "datasets").mkdir()
    server = LocalServer(
        LocalServerConfig(data_dir=tmp_path / "ls-data", document_root=tmp_path / "datasets")
    )
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("moment", ["committed", "in-flight"])
def test_server_killed_inside_one_import_call_each_item_is_one_task(own_server, tmp_path, moment):
    store = DatasetStore(own_server.document_root / "ds")
    items = make_items(store, N)
    proxy = KillingProxy(own_server, moment)
    cfg = LabelStudioConfig(
        url=proxy.url,
        api_key=own_server.token,
        document_root=own_server.document_root,
        project_title=f"import kill {moment}",
        chunk_size=N,  # one import call for every task
        gold_share=0.0,
        retry_attempts=10,
        retry_wait_max_s=2.0,
    )
    try:
        report = push_items(store, cfg)
    finally:
        proxy.close()
    assert proxy.killed_at is not None, "the server was never killed inside the import call"
    assert proxy.restarted.is_set()
    assert report.chunks <= 1 and report.pushed + report.recovered == N, report
    if moment == "committed":
        assert report.recovered == N and report.pushed == 0, report  # found in the server, not re-sent

    direct = cfg.model_copy(update={"url": own_server.url})
    with http_client(direct) as http:
        tasks = list_tasks(direct, http, report.project_id)
    per_item = Counter(t["data"][ITEM_FIELD] for t in tasks)
    assert set(per_item) == {i["item_id"] for i in items}
    assert set(per_item.values()) == {1}, "an item became two tasks"
    mapped = {r["item_id"]: r["task_id"] for r in store.read("labelstudio_tasks")}
    assert mapped == {t["data"][ITEM_FIELD]: t["id"] for t in tasks}
