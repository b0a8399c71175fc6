"""Global concurrency limits the flow holds around scarce resources (GPUs, the teacher endpoint)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

from prefect.client.orchestration import get_client

log = logging.getLogger(__name__)

GPU_LIMIT = "aescot-gpu"
TEACHER_LIMIT = "aescot-teacher"
# Slots are leases, renewed while held. A run killed while holding one (SIGKILL, a lost machine)
# frees it when the lease lapses: 60 s is the shortest lease Prefect's server accepts.
SLOT_LEASE_S = 60.0

# Where the server keeps those leases. Prefect's default keeps them in the server's memory: a server
# restarted (or an ephemeral API started anew by the next run) has no lease for a slot a killed run
# held, so nothing ever frees it and every later run waits for it forever. In files under
# PREFECT_HOME they outlive the server: a restarted server's lease service frees the lapsed ones, and
# for an ephemeral API (which runs no services) :class:`LeaseReclaimer` does.
LEASE_STORAGE_SETTING = "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"
FILE_LEASES = "prefect.server.concurrency.lease_storage.filesystem"
RECLAIM_EVERY_S = 10.0
SAY_WAITING_EVERY_S = 120.0  # a task still waiting for its slots says so, with who may hold them


# Batch locks: a generate task takes its GPU slot and the lock of its batch in one atomic request
# (all or nothing, so a task waiting for a lock holds no GPU slot), then reads the generation ledger.
# Two runs on one root that compute the same batch (the same sources with the same settings) cannot
# hold it at once: the second gets its slot after the first released it and finds every source in
# the ledger (skipped). The locks are global concurrency limits of 1 on the Prefect server, so they
# hold across workers on any number of hosts, and are leases like the slots, so a killed holder's
# lapses. A fixed number of them, chosen by the batch's key: two different batches that share a lock
# only wait for each other.
BATCH_LOCKS = 64
BATCH_LOCK_PREFIX = "aescot-generate-batch-"


def batch_lock(batch_id: str) -> str:
    """The name of the lock of a batch (its content key): one of :data:`BATCH_LOCKS`."""
    digest = hashlib.sha256(batch_id.encode()).digest()
    return f"{BATCH_LOCK_PREFIX}{int.from_bytes(digest[:4], 'big') % BATCH_LOCKS:02d}"


def ensure_limits(limits: dict[str, int]) -> None:
    """Create or resize global concurrency limits (shared by every run on the same Prefect API), over
    one client. Runs that start together may both find one missing: the one that loses the create
    retries."""
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        for name, limit in limits.items():
            try:
                client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)
            except ObjectAlreadyExists:
                client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)


def active_slots(name: str) -> int:
    """Slots of a global concurrency limit held now (a killed holder's slot counts until its lease lapses)."""
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


def persistent_leases(env: MutableMapping[str, str] = os.environ) -> None:
    """Have a Prefect server started with ``env`` keep slot leases in files (:data:`FILE_LEASES`);
    a person's own :data:`LEASE_STORAGE_SETTING` wins."""
    env.setdefault(LEASE_STORAGE_SETTING, FILE_LEASES)


def release_expired_leases() -> int:
    """Free the slots of every lease in ``$PREFECT_HOME`` that lapsed (its holder stopped renewing:
    a killed run), through the API, as a server's lease service would; returns how many. Holders
    that live renew theirs long before they lapse, so this never frees a slot in use."""
    from prefect.server.concurrency.lease_storage.filesystem import ConcurrencyLeaseStorage

    expired = asyncio.run(ConcurrencyLeaseStorage().read_expired_lease_ids(limit=1000))
    if expired:
        with get_client(sync_client=True) as client:
            for lease_id in expired:
                client.release_concurrency_slots_with_lease(lease_id)
        log.warning("freed the slots of %d lapsed lease(s) (runs killed while holding them)", len(expired))
    return len(expired)


class LeaseReclaimer(threading.Thread):
    """For an ephemeral API, which runs no lease service: every ``every_s`` seconds, frees the slots
    of lapsed leases (:func:`release_expired_leases`), so a run started right after a killed one
    gets the killed run's GPU slot a minute later instead of never. A daemon: it ends with the run."""

    def __init__(self, every_s: float = RECLAIM_EVERY_S):
        super().__init__(name="aescot-lease-reclaimer", daemon=True)
        self.every_s = every_s

    def run(self) -> None:
        while True:
            try:
                release_expired_leases()
            except Exception as exc:  # noqa: BLE001 - a failed pass is retried at the next one
                log.debug("lease reclaim pass failed: %s", exc)
            time.sleep(self.every_s)


def _holders(names: list[str]) -> tuple[str, list[str]]:
    """("aescot-gpu 1 of 1 held, ...", the names of the limits with no slot free)."""
    try:
        with get_client(sync_client=True) as client:
            limits = [client.read_global_concurrency_limit_by_name(n) for n in names]
    except Exception as exc:  # noqa: BLE001 - the message is help, not a result
        return f"(limits unreadable: {exc})", list(names)
    text = ", ".join(f"{lim.name} {lim.active_slots} of {lim.limit} held" for lim in limits)
    return text, [lim.name for lim in limits if lim.active_slots >= lim.limit] or list(names)


@contextmanager
def hold_slots(names: list[str], log: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    """Hold one slot of each limit in ``names`` (one all-or-nothing leased request, as Prefect's
    ``concurrency``), and never wait in silence: every :data:`SAY_WAITING_EVERY_S` seconds a task
    still waiting logs a warning with the limits' holds and what to do about a slot that never frees."""
    from prefect.concurrency.sync import concurrency

    started = time.monotonic()
    while True:
        acquired = False
        try:
            with concurrency(
                names, occupy=1, lease_duration=SLOT_LEASE_S, timeout_seconds=SAY_WAITING_EVERY_S
            ):
                acquired = True
                yield
            return
        except TimeoutError:
            if acquired:
                raise  # the work inside timed out: not ours to retry
            holds, full = _holders(names)
            log.warning(
                "still waiting for a slot after %.0f s: %s. Other runs hold them, or a killed run "
                "until its lease lapses (%.0f s); a slot a run killed before leases were kept in "
                "files still holds never frees: %s while no run is going",
                time.monotonic() - started,
                holds,
                SLOT_LEASE_S,
                "; ".join(f"`prefect gcl update {name} --active-slots 0`" for name in full),
            )
