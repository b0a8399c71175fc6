"""The rationale stage: k teacher samples per labelled item, written to the ``rationales`` table.

The table is the call cache. A sample's id is
``derive_id("rationale", model, prompt_version, mode, item_id, sample_index)`` (plus the human
answer in answer-driven mode, whose prompt contains it); a sample whose
row exists without an ``error`` is never requested again, so a re-run makes zero repeated
calls, and a sample that failed (its row has ``error``) is retried by the next run.

Work flows through a bounded pipeline: one producer reads an item's five images, downscales
them to data URLs (in a thread) and queues its missing samples; ``concurrency`` workers call the
endpoint; results are appended every ``flush_every`` samples, so a crash loses at most that
many calls. Items whose images cannot be read are recorded in ``rejects`` and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aescot.ids import derive_id
from aescot.rejects import Reject, record_rejects
from aescot.store import DatasetStore
from aescot.teacher.agreement import answer_agreement
from aescot.teacher.client import ChatResult, TeacherClient, TeacherFatalError
from aescot.teacher.config import RationaleConfig
from aescot.teacher.images import ImageUnreadable, image_data_url
from aescot.teacher.parse import AnswerFormatError, format_response, parse_response
from aescot.teacher.prompts import teacher_prompt
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)
STAGE = "rationales"


def rationale_id(
    model: str,
    prompt_version: str,
    mode: str,
    item_id: str,
    sample_index: int,
    label: dict[str, Any] | None = None,
) -> str:
    """The id (and cache key) of one sample: (model, prompt version, mode, item, sample index).

    In ``answer_driven`` mode the human answer is part of the prompt, so it is part of the id
    too (``label`` is required there and ignored in blind mode): when a label changes, its
    item's answer-driven samples are requested again and the old ones are no longer used.
    """
    parts: list[Any] = [model, prompt_version, mode, item_id, int(sample_index)]
    if mode == "answer_driven":
        if label is None:
            raise ValueError("an answer_driven rationale id needs the human answer")
        parts.append({k: label[k] for k in ("acceptable", "best", "dimensions")})
    return derive_id("rationale", *parts)


@dataclass
class RationaleReport:
    """What one run did. ``cached`` samples were already done and cost nothing."""

    items_labelled: int = 0
    items_complete_before: int = 0
    samples_cached: int = 0
    samples_missing: int = 0
    calls: int = 0
    ok: int = 0
    failed: int = 0
    format_failures: int = 0
    consistent: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls_without_usage: int = 0  # the server sent no token counts: their cost is unknown (and not guarded)
    stopped: str | None = None  # "limit" | "max_cost" when a guard stopped the run early
    rejects: list[Reject] = field(default_factory=list)
    elapsed_s: float = 0.0
    failures: Counter[str] = field(default_factory=Counter)  # failed calls by cause

    @property
    def remaining(self) -> int:
        """Samples still to do after this run (not started, or failed)."""
        return self.samples_missing - self.ok - self.format_failures

    @property
    def nothing_succeeded(self) -> bool:
        """Calls were made and not one reply could be used: a scheduler must see this as a failure."""
        return self.calls > 0 and self.ok == 0

    def failure_summary(self) -> str:
        """Failed calls by cause, most common first (unparseable replies counted too)."""
        causes = Counter(self.failures)
        if self.format_failures:
            causes["unparseable reply"] += self.format_failures
        return ", ".join(f"{n} {cause}" for cause, n in causes.most_common()) or "no failures"


class _CostGuard:
    """Stops new calls once spent + (in flight + 1) x mean cost would pass the budget.

    Until the first call has finished its cost is unknown, so only one call runs.
    """

    def __init__(self, budget: float | None):
        self.budget = budget
        self.spent = 0.0
        self.finished = 0
        self.in_flight = 0
        self._cond = asyncio.Condition()

    async def reserve(self) -> bool:
        if self.budget is None:
            return True
        async with self._cond:
            while True:
                if self.spent >= self.budget:
                    return False
                if self.finished == 0 and self.in_flight:
                    await self._cond.wait()
                    continue
                mean = self.spent / self.finished if self.finished else 0.0
                if self.spent + (self.in_flight + 1) * mean > self.budget:
                    if not self.in_flight:
                        return False
                    await self._cond.wait()
                    continue
                self.in_flight += 1
                return True

    async def settle(self, cost: float | None) -> None:
        if self.budget is None:
            self.spent += cost or 0.0
            return
        async with self._cond:
            self.in_flight -= 1
            self.finished += 1
            self.spent += cost or 0.0
            self._cond.notify_all()


@dataclass
class _Job:
    item_id: str
    sample_index: int
    messages: list[dict[str, Any]]
    label: dict[str, Any]


def failure_cause(error: str) -> str:
    """The cause of a failed call, for summaries: the error's type and HTTP status (before the ':')."""
    return error.split(":", 1)[0].strip() or "error"


def _load_images(store: DatasetStore, item: dict[str, Any], config: RationaleConfig) -> list[str]:
    keys = [
        item["source_image_key"],
        *[c["image_key"] for c in sorted(item["candidates"], key=lambda c: c["letter"])],
    ]
    t = config.teacher
    return [image_data_url(store.read_bytes(k), t.image_max_side, t.image_format) for k in keys]


def _record(job: _Job, result: ChatResult, config: RationaleConfig) -> dict[str, Any]:
    t = config.teacher
    rec: dict[str, Any] = {
        "rationale_id": rationale_id(
            t.model, config.prompt_version, config.mode, job.item_id, job.sample_index, job.label
        ),
        "item_id": job.item_id,
        "teacher_model": t.model,
        "prompt_version": config.prompt_version,
        "mode": config.mode,
        "sample_index": job.sample_index,
        "text": t.scrub(result.text) or "",
        "parsed": None,
        "format_ok": False,
        "format_error": None,
        "error": t.scrub(result.error),
        "agreement": None,
        "consistent": None,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_usd": t.cost(result.prompt_tokens, result.completion_tokens),
        "created_at": now_iso(),
    }
    if result.error is not None:
        return rec
    try:
        parsed = parse_response(result.text or "")
    except AnswerFormatError as exc:
        reason = str(exc) + (" (output truncated at max_tokens)" if result.finish_reason == "length" else "")
        rec.update(format_error=t.scrub(reason[:500]), consistent=False)
        return rec
    agreement = answer_agreement(parsed.answer, job.label)
    rec.update(
        text=t.scrub(format_response(parsed.reasoning, parsed.answer)),
        parsed=parsed.answer,
        format_ok=True,
        agreement=round(agreement.score, 6),
        consistent=agreement.consistent,
    )
    return rec


async def agenerate_rationales(
    store: DatasetStore,
    config: RationaleConfig,
    item_ids: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RationaleReport:
    """Async :func:`generate_rationales` (for callers already inside an event loop)."""
    t = config.teacher.require()
    started = time.monotonic()
    report = RationaleReport()
    labels = {row["item_id"]: row for row in store.read("labels")}
    if item_ids is not None:
        wanted = set(item_ids)
        labels = {k: v for k, v in labels.items() if k in wanted}
    report.items_labelled = len(labels)
    done = {
        r["rationale_id"]
        for r in store.read("rationales", columns=["rationale_id", "error"])
        if r["error"] is None
    }
    items = {row["item_id"]: row for row in store.read("items")} if labels else {}

    plan: list[tuple[str, list[int]]] = []
    for item_id in sorted(labels):
        missing = [
            s
            for s in range(config.samples)
            if rationale_id(t.model, config.prompt_version, config.mode, item_id, s, labels[item_id])
            not in done
        ]
        report.samples_cached += config.samples - len(missing)
        if not missing:
            report.items_complete_before += 1
            continue
        if item_id not in items:
            report.rejects.append(
                Reject(STAGE, item_id, "item_missing", "a label exists but the item does not")
            )
            continue
        report.samples_missing += len(missing)
        plan.append((item_id, missing))

    queue: asyncio.Queue[_Job | None] = asyncio.Queue(maxsize=2 * t.concurrency)
    guard = _CostGuard(config.max_cost_usd)
    stop = asyncio.Event()
    pending: list[dict[str, Any]] = []
    write_lock = threading.Lock()
    fatal: list[BaseException] = []

    def flush() -> None:
        with write_lock:
            batch = pending[:]
            del pending[: len(batch)]
        if batch:
            store.upsert("rationales", batch)

    async def prepare(item_id: str) -> list[str] | Reject:
        try:
            return await asyncio.to_thread(_load_images, store, items[item_id], config)
        except (ImageUnreadable, OSError) as exc:
            reason = "image_unreadable" if isinstance(exc, ImageUnreadable) else "image_missing"
            return Reject(STAGE, item_id, reason, str(exc)[:300])

    async def produce() -> None:
        # Images of the next few items are read and encoded in threads while earlier items are
        # being called (Pillow releases the GIL), so encoding does not starve the workers.
        prefetch = max(1, min(8, t.concurrency))
        window: list[tuple[str, list[int], asyncio.Task]] = []
        started_calls = 0
        upcoming = iter(plan)
        try:
            while True:
                while len(window) < prefetch and (entry := next(upcoming, None)) is not None:
                    window.append((*entry, asyncio.create_task(prepare(entry[0]))))
                if not window or stop.is_set():
                    break
                item_id, missing, task = window.pop(0)
                urls = await task
                if isinstance(urls, Reject):
                    report.rejects.append(urls)
                    continue
                label = labels[item_id]
                prompt = teacher_prompt(
                    config.mode, label if config.mode == "answer_driven" else None, config.prompt_version
                )
                messages = prompt.messages(urls)
                for s in missing:
                    if config.limit is not None and started_calls >= config.limit:
                        report.stopped = report.stopped or "limit"
                        return
                    if stop.is_set():
                        return
                    await queue.put(_Job(item_id, s, messages, label))
                    started_calls += 1
        finally:
            for _, _, task in window:
                task.cancel()
            for _ in range(t.concurrency):
                await queue.put(None)

    async def work(client: TeacherClient) -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            if stop.is_set():
                continue
            if not await guard.reserve():
                report.stopped = report.stopped or "max_cost"
                stop.set()
                continue
            headers = {"X-Aescot-Item-Id": job.item_id, "X-Aescot-Sample-Index": str(job.sample_index)}
            try:
                result = await client.complete(job.messages, headers)
            except TeacherFatalError as exc:
                fatal.append(exc)
                stop.set()
                await guard.settle(None)
                continue
            rec = _record(job, result, config)
            await guard.settle(rec["cost_usd"])
            report.calls += 1
            if rec["error"] is not None:
                report.failed += 1
                report.failures[failure_cause(rec["error"])] += 1
            elif rec["format_ok"]:
                report.ok += 1
                report.consistent += bool(rec["consistent"])
            else:
                report.format_failures += 1
            report.prompt_tokens += rec["prompt_tokens"] or 0
            report.completion_tokens += rec["completion_tokens"] or 0
            report.cost_usd += rec["cost_usd"] or 0.0
            if rec["error"] is None and rec["prompt_tokens"] is None:
                if not report.calls_without_usage:
                    log.warning(
                        "the endpoint returns no token usage: cost estimates and --max-cost cannot count it"
                    )
                report.calls_without_usage += 1
            pending.append(rec)
            if len(pending) >= config.flush_every:
                await asyncio.to_thread(flush)
            if progress:
                progress(1)

    if plan:
        async with TeacherClient(t) as client:
            tasks = [asyncio.create_task(work(client)) for _ in range(t.concurrency)]
            producer = asyncio.create_task(produce())
            try:
                await asyncio.gather(producer, *tasks)
            finally:
                for task in (producer, *tasks):
                    task.cancel()
                await asyncio.to_thread(flush)
    if report.rejects:
        record_rejects(store, report.rejects)
    report.elapsed_s = time.monotonic() - started
    if fatal:
        raise fatal[0]
    return report


def generate_rationales(
    store: DatasetStore,
    config: RationaleConfig,
    item_ids: Iterable[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RationaleReport:
    """Request the missing teacher samples of every labelled item (or of ``item_ids``).

    Returns a :class:`RationaleReport`. Raises :class:`~aescot.teacher.config.TeacherNotConfigured`
    when the endpoint is not set, and :class:`~aescot.teacher.client.TeacherFatalError` (after
    saving what finished) when the endpoint refuses the key, URL or model.
    """
    coro = agenerate_rationales(store, config, item_ids, progress)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop (e.g. an async Prefect flow): run in a thread of its own.
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=runner, name="aescot-rationales")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
