"""Global concurrency limits the flow holds around scarce resources (GPUs, the teacher endpoint)."""

from __future__ import annotations

from prefect.client.orchestration import get_client

GPU_LIMIT = "aescot-gpu"
TEACHER_LIMIT = "aescot-teacher"
# Slots are leases, renewed while held. A run killed while holding one (SIGKILL, a lost machine)
# frees it when the lease lapses: 60 s is the shortest lease Prefect's server accepts.
SLOT_LEASE_S = 60.0


def ensure_limit(name: str, limit: int) -> None:
    """Create or resize a global concurrency limit (shared by every run on the same Prefect API)."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)


def active_slots(name: str) -> int:
    """Slots of a global concurrency limit held now (a killed holder's slot counts until its lease lapses)."""
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots
