"""Global concurrency limits the flow holds around scarce resources (GPUs, the teacher endpoint)."""

from __future__ import annotations

import hashlib

from prefect.client.orchestration import get_client

GPU_LIMIT = "aescot-gpu"
TEACHER_LIMIT = "aescot-teacher"
# Slots are leases, renewed while held. A run killed while holding one (SIGKILL, a lost machine)
# frees it when the lease lapses: 60 s is the shortest lease Prefect's server accepts.
SLOT_LEASE_S = 60.0


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


def ensure_limit(name: str, limit: int) -> None:
    """Create or resize a global concurrency limit (shared by every run on the same Prefect API).
    Runs that start together may both find it missing: the one that loses the create retries."""
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)
        except ObjectAlreadyExists:
            client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)


def active_slots(name: str) -> int:
    """Slots of a global concurrency limit held now (a killed holder's slot counts until its lease lapses)."""
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots
