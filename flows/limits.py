"""Global concurrency limits the flow holds around scarce resources (GPUs, the teacher endpoint)."""

from __future__ import annotations

from prefect.client.orchestration import get_client

GPU_LIMIT = "aescot-gpu"
TEACHER_LIMIT = "aescot-teacher"


def ensure_limit(name: str, limit: int) -> None:
    """Create or resize a global concurrency limit (shared by every run on the same Prefect API)."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name=name, limit=limit)
