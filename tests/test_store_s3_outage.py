"""The object store goes away for 30 s while ingest + generate write to it (issue 14, item 3's fault).

A real S3-compatible server (``moto_server``, a process of its own) goes away for :data:`OUTAGE_S`
seconds while a writer process runs ``ingest`` then ``generate`` (+ items) on ``s3://aescot/...``,
in two ways: ``frozen`` (SIGSTOP, then SIGCONT: connections hang, as on a server that stalls or a
network that drops packets) and ``refused`` (its port shut in front of it, open connections dropped,
then opened again on the same port: as a server that stops and comes back). moto keeps its objects
in its process, so it comes back with its data either way. Meanwhile a reader polls the tables with
short timeouts and no retries. The test asserts that

* the writer was still writing when the server came back, then finished with exit 0 (so every
  request in flight was retried or waited for; botocore's retries and delays are printed);
* the result is complete: every source once, 4 candidates each, 0 duplicated candidates, one item
  per source, 0 rejects, every candidate image present, no temporary object;
* the reader never saw a partial write: every read it completed was a committed version (sources
  with 0 or 4 candidates, no item without its 4 candidates, versions never going back), reads during
  the outage failed rather than returning anything, and a read right after showed at least the
  version committed before it.

``refused`` needs the store's retry settings (``/tmp/readme-parts/s3_store_patch.diff``); without
them it is an expected failure (strict: it fails as soon as the store has them, to be unmarked).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from aescot.labelstudio.server import free_port
from tests import realparts
from tests.s3 import moto_client

OUTAGE_S = 30
N_SOURCES = 64
ROOT = "s3://aescot/outage"


class Gate(threading.Thread):
    """A TCP port in front of the S3 server that can be shut: ``close()`` stops listening and drops
    every open connection (clients get "connection refused", as from a stopped server); ``open()``
    listens again on the same port. The server behind it, and its data, stay as they were."""

    def __init__(self, backend_port: int):
        super().__init__(daemon=True)
        self.backend = ("127.0.0.1", backend_port)
        self.port = free_port()
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.open()
        self.start()

    def open(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(128)
        self.listener = ls

    def close(self) -> None:
        ls, self.listener = self.listener, None
        if ls is not None:
            ls.close()
        with self.lock:
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
            self.conns.clear()

    def run(self) -> None:
        while True:
            ls = self.listener
            if ls is None:
                time.sleep(0.05)
                continue
            try:
                client, _ = ls.accept()
            except OSError:
                continue  # closed under us
            try:
                upstream = socket.create_connection(self.backend)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
            with self.lock:
                self.conns -= {src, dst}


WRITER = r"""
import json, logging, sys, time
logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
for name in ("botocore.retryhandler", "s3fs"):  # their retry decisions, with the delay they chose
    logging.getLogger(name).setLevel(logging.DEBUG)
from aescot.generate import GenerateConfig, generate_candidates
from aescot.ingest import ingest
from aescot.items import build_items
from aescot.store import DatasetStore
root, manifest = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
ing = ingest(DatasetStore(root), [manifest])
print(json.dumps({"stage": "ingest", "added": ing.added, "t": time.monotonic() - t0}), flush=True)
store = DatasetStore(root)
gen = generate_candidates(store, GenerateConfig(backend="synthetic", flush_every=4))
items = build_items(store, group_ids=gen.finished_group_ids)
print(json.dumps({"stage": "generate", "generated": gen.generated, "candidates": gen.candidates,
                  "rejects": len(gen.rejects), "items": items.built, "t": time.monotonic() - t0}), flush=True)
"""


@pytest.fixture
def moto_process(tmp_path):
    """``moto_server`` in a process of its own (so it can be frozen), bucket ``aescot``; its URL."""
    realparts.need("moto.server", "the S3 server (moto)", "the dev extra: pip install -e '.[dev]'")

    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        realparts.absent("the S3 server (moto_server)", f"no {exe}")
    port = free_port()
    log = tmp_path / "moto.log"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    client = moto_client(url)
    deadline = time.monotonic() + 60
    failed = None
    while True:
        try:
            client.create_bucket(Bucket="aescot")
            break
        except Exception as exc:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                failed = repr(exc)
                break
            time.sleep(0.3)
    if failed:
        proc.kill()
        realparts.broken("the S3 server (moto_server)", failed, log.read_text(errors="replace"))
    yield proc, url
    os.kill(proc.pid, signal.SIGCONT)  # never leave it frozen
    proc.terminate()
    proc.wait(30)


class Reader(threading.Thread):
    """Polls the tables as another process would, with short timeouts and no retries, and records
    what each read saw (or that it failed)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.opts = {
            "aws_endpoint": url,
            "allow_http": "true",
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            "aws_region": "us-east-1",
            "timeout": "3s",
            "connect_timeout": "1s",
            "client_max_retries": "0",
        }
        self.reads: list[dict] = []
        self.stop = threading.Event()

    def read_once(self) -> dict:
        import lance

        seen: dict = {"t": time.monotonic()}
        try:
            cand = lance.dataset(f"{ROOT}/tables/candidates.lance", storage_options=self.opts)
            rows = cand.to_table(columns=["candidate_id", "source_id"])
            seen["cand_version"] = cand.version
            per_source = Counter(rows.column("source_id").to_pylist())
            seen["cand_rows"] = rows.num_rows
            seen["dup"] = rows.num_rows - len(set(rows.column("candidate_id").to_pylist()))
            seen["partial_sources"] = sum(1 for c in per_source.values() if c != 4)
            try:
                items = lance.dataset(f"{ROOT}/tables/items.lance", storage_options=self.opts)
                item_sources = items.to_table(columns=["source_id"]).column("source_id").to_pylist()
            except ValueError as exc:  # not created yet
                if "not found" not in str(exc).lower() and "does not exist" not in str(exc).lower():
                    raise
                item_sources = []
            seen["items_without_candidates"] = sum(1 for s in item_sources if per_source.get(s) != 4)
            seen["ok"] = True
        except Exception as exc:  # noqa: BLE001 - a failed read is a result too (during the outage)
            seen["ok"] = False
            seen["error"] = " ".join(str(exc).split())[:160]
        seen["t_end"] = time.monotonic()
        return seen

    def run(self):
        while not self.stop.is_set():
            self.reads.append(self.read_once())
            self.stop.wait(0.3)


@pytest.mark.parametrize("outage", ["frozen", "refused"])
def test_s3_outage_mid_generate_retries_and_leaves_nothing_partial(moto_process, tmp_path, outage):
    """``frozen``: the server process is stopped (SIGSTOP): connections hang. ``refused``: its port is
    shut (in front of it): connections are refused and open ones dropped, as when a server stops."""
    realparts.need("s3fs", "S3 access (s3fs)", "the dev or s3 extra: pip install -e '.[s3]'")
    from aescot.samples import write_sample_sources
    from aescot.store import DatasetStore

    proc, server_url = moto_process
    if outage == "refused":
        gate = Gate(int(server_url.rsplit(":", 1)[1]))
        url = f"http://127.0.0.1:{gate.port}"
        stop, resume = gate.close, gate.open
    else:
        url = server_url
        stop, resume = (
            (lambda: os.kill(proc.pid, signal.SIGSTOP)),
            (lambda: os.kill(proc.pid, signal.SIGCONT)),
        )
    manifest = write_sample_sources(tmp_path / "src", n=N_SOURCES, size=64)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    writer_log = tmp_path / "writer.err"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, ROOT, str(manifest)],
        stdout=subprocess.PIPE,
        stderr=writer_log.open("wb"),
        env=env,
        text=True,
    )
    reader = Reader(url)
    reader.start()
    try:
        # the outage starts once generate has committed its first candidates, mid-stage
        deadline = time.monotonic() + 120
        while not any(r.get("cand_rows") for r in reader.reads):
            assert writer.poll() is None, (
                f"the writer ended before the outage: {writer_log.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, "generate committed nothing within 120 s"
            time.sleep(0.1)
        before = max(r["cand_version"] for r in reader.reads if r.get("ok"))
        stop()
        t_stop = time.monotonic()
        time.sleep(OUTAGE_S)
        resume()
        t_cont = time.monotonic()
        assert writer.poll() is None, (
            "the writer did not notice the outage (ended while the server was stopped)"
        )
        out, _ = writer.communicate(timeout=240)
        t_done = time.monotonic()
    finally:
        reader.stop.set()
        reader.join(30)
        if writer.poll() is None:
            writer.kill()
    err = writer_log.read_text(errors="replace")
    assert writer.returncode == 0, f"the writer failed after the outage:\n{err[-4000:]}"
    stages = {r["stage"]: r for r in map(json.loads, out.strip().splitlines())}
    gen = stages["generate"]
    assert stages["ingest"]["added"] == N_SOURCES
    assert (gen["generated"], gen["candidates"], gen["rejects"], gen["items"]) == (
        N_SOURCES,
        4 * N_SOURCES,
        0,
        N_SOURCES,
    ), gen
    assert t_done > t_cont  # it was still writing when the server came back, and then finished

    # It rode the outage out: still writing when the server came back, then finished. Refused
    # connections cannot be waited out, so there every request in flight was retried until the port
    # opened again (object_store's backoff for Lance's tables, botocore's for s3fs's images: the latter
    # logs each retry and the delay it chose). A frozen server is waited for: a request is retried once
    # its read times out (botocore 15 s, s3fs's setting), else answered when the server resumes.
    backoffs = [float(x) for x in re.findall(r"Retry needed, action of: ([0-9.]+)", err)]
    print(
        f"{outage}: writer done {t_done - t_cont:.1f} s after the outage; botocore retries, delays {backoffs}"
    )

    # complete: every source once, 4 candidates each, no duplicate, every image there, no temp object
    store = DatasetStore(
        ROOT,
        storage_options={
            "key": "test",
            "secret": "test",
            "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"},
        },
    )
    sources = store.read_arrow("sources", ["source_id"]).column("source_id").to_pylist()
    cand = store.read_arrow("candidates", ["candidate_id", "source_id", "image_key"])
    ids = cand.column("candidate_id").to_pylist()
    assert len(sources) == len(set(sources)) == N_SOURCES
    assert len(ids) == len(set(ids)) == 4 * N_SOURCES
    assert set(Counter(cand.column("source_id").to_pylist()).values()) == {4}
    assert sorted(store.read_arrow("items", ["source_id"]).column("source_id").to_pylist()) == sorted(sources)
    keys = set(store.list_keys("images"))
    assert set(cand.column("image_key").to_pylist()) <= keys
    assert not [k for k in store.fs.find(store.path) if os.path.basename(k).startswith(".tmp")]

    # the reader: only committed versions, never partial; nothing read during the outage
    done = [r for r in reader.reads if r["ok"]]
    assert all(r["partial_sources"] == 0 and r["dup"] == 0 for r in done), "a reader saw a partial write"
    assert all(r["items_without_candidates"] == 0 for r in done), "an item was visible before its candidates"
    versions = [r["cand_version"] for r in sorted(done, key=lambda r: r["t_end"])]
    assert versions == sorted(versions), f"a reader went back a version: {versions}"
    during = [r for r in reader.reads if r["t"] >= t_stop and r["t_end"] <= t_cont]
    assert during and not any(r["ok"] for r in during), "reads during the outage should fail, not answer"
    after = [r for r in done if r["t"] >= t_cont]
    assert after and after[0]["cand_version"] >= before
