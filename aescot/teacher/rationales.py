"""The rationale stage: k teacher samples per labelled item, written to the ``rationales`` table.

The table is the call cache. A sample's id is
``derive_id("rationale", model, prompt_version, mode, item_id, sample_index)`` (plus the human
answer in answer-driven mode, whose prompt contains it); a sample whose
row exists without an ``error`` is never requested again, so a re-run makes zero repeated
calls, and a sample that failed (its row has ``error``) is retried by the next run.

What is left to do is found once per run from key columns, never whole rows: labelled items with
no rationale at all (``store.backlog``: every sample missing), labelled items without an item
record (``store.backlog`` again: rejected), and, in blind mode, the items whose k samples are all
finished (one grouped count over the projected ``item_id`` of finished rows). Only the other items
(started, or answer-driven, whose ids depend on the current label) have their k ids checked, a
batch at a time by key. The label and item rows of the items to call are read by key a chunk at a
time as the producer reaches them, with only the columns the prompt and the images need.

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
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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
LABEL_COLUMNS = ["item_id", "acceptable", "best", "dimensions"]  # what the prompt and the agreement use
ITEM_COLUMNS = ["item_id", "source_image_key", "candidates"]  # what the images need
CHECK_BATCH = 1024  # started items whose sample ids are checked per key read
LOAD_CHUNK = 64  # items whose label and item rows the producer reads per key read


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


def _plan(
    store: DatasetStore, config: RationaleConfig, item_ids: Iterable[str] | None, report: RationaleReport
) -> list[tuple[str, list[int]]]:
    """The missing sample indices of every labelled item still to call, in item id order.

    Fills the report's counts (labelled, complete before, cached, missing) and its
    ``item_missing`` rejects. Reads key columns once, then started items' ids by key in batches.
    """
    t, k = config.teacher, config.samples
    labelled = _unique_sorted(store.column("labels", "item_id"))
    if item_ids is not None:
        wanted = pa.array(sorted(set(item_ids)), pa.string())
        labelled = labelled.filter(pc.is_in(labelled, value_set=wanted))
    report.items_labelled = len(labelled)
    if not len(labelled):
        return []
    fresh = store.backlog("labels", "rationales", on="item_id")  # no sample of any kind yet
    orphans = set(store.backlog("labels", "items", on="item_id").to_pylist())
    complete = pa.array([], pa.string())
    if config.mode == "blind":  # ids depend on (model, prompt, mode, item, index) only: a count suffices
        finished = store.read_arrow(
            "rationales",
            ["item_id"],
            where=(pc.field("teacher_model") == t.model)
            & (pc.field("prompt_version") == config.prompt_version)
            & (pc.field("mode") == config.mode)
            & (pc.field("sample_index") < k)
            & pc.field("error").is_null(),
        )
        counts = finished.group_by("item_id", use_threads=False).aggregate([("item_id", "count")])
        complete = counts.filter(pc.field("item_id_count") >= k).column("item_id").combine_chunks()
    is_complete = pc.is_in(labelled, value_set=complete)
    report.items_complete_before = pc.sum(is_complete).as_py() or 0
    report.samples_cached = report.items_complete_before * k
    todo = labelled.filter(pc.invert(is_complete))
    is_fresh = pc.is_in(todo, value_set=fresh).to_pylist()
    todo_ids = todo.to_pylist()

    missing_of: dict[str, list[int]] = {i: list(range(k)) for i, f in zip(todo_ids, is_fresh) if f}
    started = [i for i, f in zip(todo_ids, is_fresh) if not f]
    for start in range(0, len(started), CHECK_BATCH):
        missing_of.update(_missing_samples(store, config, started[start : start + CHECK_BATCH]))

    plan: list[tuple[str, list[int]]] = []
    for item_id in todo_ids:
        missing = missing_of[item_id]
        report.samples_cached += k - len(missing)
        if not missing:
            report.items_complete_before += 1
            continue
        if item_id in orphans:
            report.rejects.append(
                Reject(STAGE, item_id, "item_missing", "a label exists but the item does not")
            )
            continue
        report.samples_missing += len(missing)
        plan.append((item_id, missing))
    return plan


def _missing_samples(store: DatasetStore, config: RationaleConfig, batch: list[str]) -> dict[str, list[int]]:
    """For items that have some rationale row: which of their k sample ids have no finished row."""
    t, k = config.teacher, config.samples
    labels = {r["item_id"]: r for r in store.read("labels", LABEL_COLUMNS, keys=batch)}
    ids = {
        (item_id, s): rationale_id(
            t.model, config.prompt_version, config.mode, item_id, s, labels.get(item_id)
        )
        for item_id in batch
        for s in range(k)
    }
    done = store.read_arrow(
        "rationales", ["rationale_id"], where=pc.field("error").is_null(), keys=list(ids.values())
    )
    done_ids = set(done.column("rationale_id").to_pylist())
    out: dict[str, list[int]] = {i: [] for i in batch}
    for (item_id, s), rid in ids.items():
        if rid not in done_ids:
            out[item_id].append(s)
    return out


def _rows_of(store: DatasetStore, ids: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """The item rows (image keys) and labels of ``ids``, by key, only the columns the calls need."""
    items = {r["item_id"]: r for r in store.read("items", ITEM_COLUMNS, keys=ids)}
    labels = {r["item_id"]: r for r in store.read("labels", LABEL_COLUMNS, keys=ids)}
    return items, labels


def _unique_sorted(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = pc.unique(arr) if len(arr) else arr
    return pc.take(arr, pc.sort_indices(arr))


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
    plan = await asyncio.to_thread(_plan, store, config, item_ids, report)

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

    async def prepare(item_id: str, item: dict[str, Any] | None) -> list[str] | Reject:
        if item is None:  # planned, then gone (never deleted by aescot): say so rather than crash
            return Reject(STAGE, item_id, "item_missing", "a label exists but the item does not")
        try:
            return await asyncio.to_thread(_load_images, store, item, config)
        except (ImageUnreadable, OSError) as exc:
            reason = "image_unreadable" if isinstance(exc, ImageUnreadable) else "image_missing"
            return Reject(STAGE, item_id, reason, str(exc)[:300])

    async def entries() -> AsyncIterator[tuple[str, list[int], dict[str, Any] | None, dict[str, Any]]]:
        """The plan with each item's row and label, read by key a chunk at a time (in a thread)."""
        for start in range(0, len(plan), LOAD_CHUNK):
            part = plan[start : start + LOAD_CHUNK]
            items, labels = await asyncio.to_thread(_rows_of, store, [i for i, _ in part])
            for item_id, missing in part:
                if item_id in labels:
                    yield item_id, missing, items.get(item_id), labels[item_id]

    async def produce() -> None:
        # Images of the next few items are read and encoded in threads while earlier items are
        # being called (Pillow releases the GIL), so encoding does not starve the workers.
        prefetch = max(1, min(8, t.concurrency))
        window: list[tuple[str, list[int], dict[str, Any], asyncio.Task]] = []
        started_calls = 0
        upcoming = entries()
        try:
            while True:
                while len(window) < prefetch and (entry := await anext(upcoming, None)) is not None:
                    item_id, missing, item, label = entry
                    window.append((item_id, missing, label, asyncio.create_task(prepare(item_id, item))))
                if not window or stop.is_set():
                    break
                item_id, missing, label, task = window.pop(0)
                urls = await task
                if isinstance(urls, Reject):
                    report.rejects.append(urls)
                    continue
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
            for *_, task in window:
                task.cancel()
            await upcoming.aclose()
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
