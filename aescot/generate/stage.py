"""The generation stage: four candidates per source, near-duplicates regenerated, all recorded.

``generate_candidates(store, config, source_ids)`` is what the CLI and the Prefect flow call.
Per source: generate slots 0-3 with seeds derived from (source, base seed, slot, attempt),
hash them, regenerate with the next attempt's seed any that is near the source (a degenerate
generation) or near another of its group, up to ``dedupe.max_regenerations`` times; every
dropped image is a reject with its seed, attempt and distance. Images are stored before
the candidate rows that reference them, and candidate rows before the group's ledger row.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image
from pydantic import BaseModel, Field

from aescot.contracts import ContractError, validate
from aescot.dedupe.hashing import DedupeConfig, colour_of, group_duplicates, hash_image
from aescot.errors import StoreError, one_line
from aescot.generate.base import GeneratedImage, GenerationError, Generator, SourceImage
from aescot.generate.diffusion import DiffusersConfig, DiffusersGenerator, ModelNotAvailable
from aescot.generate.groups import GROUPS
from aescot.generate.latency import LatencyConfig, LatencyGenerator
from aescot.generate.synthetic import SyntheticConfig, SyntheticGenerator
from aescot.ids import candidate_id, canonical_json, derive_id
from aescot.images import encode_png
from aescot.rejects import Reject, count_reasons, record_rejects
from aescot.store import DatasetStore
from aescot.tables import StoreUnreachable, is_unreachable
from aescot.timeutil import now_iso
from aescot.vocab import SLOTS

log = logging.getLogger(__name__)
STAGE = "generate"
READ_CHUNK = 256  # sources whose rows (and ledger rows) one keyed read fetches
SOURCE_COLUMNS = ["source_id", "image_key", "mask_key", "product"]  # what generation reads of a source


class GenerateConfig(BaseModel):
    """Which backend, its settings, seeds and dedupe."""

    backend: Literal["synthetic", "diffusers", "latency"] = "synthetic"
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)
    diffusers: DiffusersConfig = Field(default_factory=DiffusersConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    dedupe: DedupeConfig = Field(default_factory=DedupeConfig)
    base_seed: int = Field(0, ge=0, description="changes every derived seed; keep it to reproduce a set")
    flush_every: int = Field(
        16, ge=1, description="sources per atomic append (a crash loses at most this many)"
    )


def make_generator(config: GenerateConfig) -> Generator:
    """The configured backend."""
    if config.backend == "diffusers":
        return DiffusersGenerator(config.diffusers)
    if config.backend == "latency":
        return LatencyGenerator(config.latency)
    return SyntheticGenerator(config.synthetic)


def slot_seed(source_id: str, base_seed: int, slot: int, attempt: int) -> int:
    """The seed of one (source, slot, attempt): stable across runs and machines, 31 bits."""
    return int(derive_id("seed", source_id, base_seed, slot, attempt)[:8], 16) & 0x7FFFFFFF


def group_id(source_id: str, generator: Generator, config: GenerateConfig) -> str:
    """One source's generation under one set of generator settings and base seed.

    Dedupe settings, device and batch size are recorded but are not part of the identity:
    changing them does not make every source "new" again.
    """
    return derive_id(
        "generation-group",
        source_id,
        generator.name,
        generator.model,
        generator.fingerprint(),
        config.base_seed,
    )


def group_config(generator: Generator, config: GenerateConfig) -> dict:
    return {
        "generator": generator.fingerprint(),
        "base_seed": config.base_seed,
        "dedupe": config.dedupe.model_dump(),
    }


@dataclass
class GenerateReport:
    """What a generation run did."""

    sources: int = 0
    generated: int = 0  # sources whose group finished in this run
    skipped: int = 0  # sources already done with these settings
    candidates: int = 0  # candidate rows written
    regenerations: int = 0  # images dropped as near-duplicates and generated again
    incomplete: int = 0  # groups with fewer than 4 distinct candidates after every retry
    rejects: list[Reject] = field(default_factory=list)
    group_ids: list[str] = field(default_factory=list)  # groups finished in this run
    skipped_group_ids: list[str] = field(default_factory=list)  # asked-for groups that were already final

    @property
    def finished_group_ids(self) -> list[str]:
        """Every final group of the sources asked for: what the items step builds from."""
        return self.group_ids + self.skipped_group_ids

    def reasons(self) -> dict[str, int]:
        return count_reasons(self.rejects)


def _store_fault(store: DatasetStore, action: str, exc: Exception) -> StoreError:
    """A read or write of the store that failed for a reason not of the source's making (a disk, a
    permission, an object store down past its retries): the run stops, it must not become rejects.
    :class:`StoreUnreachable` (exit 4) when the service or network failed, else ``StoreError`` (3)."""
    kind = StoreUnreachable if is_unreachable(exc) else StoreError
    return kind(
        f"cannot {action} the store at {store.root} ({type(exc).__name__}: {one_line(exc, 300)}); "
        "groups flushed so far are kept: fix the store and re-run to resume"
    )


def _read_source_file(store: DatasetStore, key: str) -> bytes:
    try:
        return store.read_bytes(key)
    except FileNotFoundError as exc:  # the source's own file is gone: its reject, the run goes on
        raise GenerationError("source_unreadable", f"{key} is missing from the store") from exc
    except Exception as exc:
        raise _store_fault(store, f"read {key} from", exc) from exc


def load_source(store: DatasetStore, row: dict) -> SourceImage:
    image_bytes = _read_source_file(store, row["image_key"])
    mask_bytes = _read_source_file(store, row["mask_key"])
    try:
        img = Image.open(io.BytesIO(image_bytes))
        img.load()
        mask = Image.open(io.BytesIO(mask_bytes))
        mask.load()
    except Exception as exc:  # undecodable bytes: this source only
        raise GenerationError("source_unreadable", f"cannot decode the source image or mask: {exc}") from exc
    if mask.size != img.size:
        raise GenerationError("mask_size_mismatch", f"mask is {mask.size}, image is {img.size}")
    return SourceImage(row["source_id"], img, mask.convert("L"), row.get("product"))


@dataclass
class _Accepted:
    slot: int
    attempt: int
    image: GeneratedImage
    phash: str
    colour_hash: str


def _generate_group(
    generator: Generator, source: SourceImage, config: GenerateConfig, rejects: list[Reject]
) -> tuple[list[_Accepted], list[int], int]:
    """Generate, dedupe and regenerate one source's slots. Returns (accepted, failed slots, regenerations)."""
    dd = config.dedupe
    source_hash = hash_image(source.image, dd)
    source_colour = colour_of(source.image)
    accepted: list[_Accepted] = []
    pending, attempt, regenerations = list(range(SLOTS)), 0, 0
    while pending:
        seeds = [slot_seed(source.source_id, config.base_seed, s, attempt) for s in pending]
        images = generator.generate(source, pending, seeds)
        if len(images) != len(pending):
            raise GenerationError(
                "wrong_output_count",
                f"{generator.name} returned {len(images)} images for {len(pending)} slots",
            )
        hashes = [hash_image(g.image, dd) for g in images]
        colours = [colour_of(g.image) for g in images]
        dups = group_duplicates(
            [a.phash for a in accepted] + hashes,
            source_hash,
            dd.threshold,
            len(accepted),
            colours=[a.colour_hash for a in accepted] + colours,
            source_colour=source_colour,
            colour_threshold=dd.colour_threshold,
        )
        dup_at = {d.index - len(accepted): d for d in dups}
        kept_before = list(accepted)
        retry = []
        for k, (slot, g, h, c) in enumerate(zip(pending, images, hashes, colours)):
            if k not in dup_at:
                accepted.append(_Accepted(slot, attempt, g, h, c))
                continue
            d = dup_at[k]
            cid = _cid(source.source_id, generator, slot, g)
            if d.other is None:
                related, what = source.source_id, "the source image (a degenerate generation)"
            else:
                if d.other < len(kept_before):
                    o_slot, o_img = kept_before[d.other].slot, kept_before[d.other].image
                else:  # an earlier image of this same batch
                    o_slot, o_img = pending[d.other - len(kept_before)], images[d.other - len(kept_before)]
                related, what = (
                    _cid(source.source_id, generator, o_slot, o_img),
                    f"slot {o_slot} of its group",
                )
            rejects.append(
                Reject(
                    "dedupe",
                    cid,
                    d.reason,
                    f"slot {slot} seed {g.seed} attempt {attempt}: perceptual hash within {d.distance} "
                    f"bits of {what} (threshold {dd.threshold})"
                    + ("" if d.colour is None else f", colours {d.colour}% apart")
                    + "; "
                    + (
                        "regenerating with a new seed"
                        if attempt < dd.max_regenerations
                        else "no retries left"
                    ),
                    related,
                )
            )
            retry.append(slot)
        if not retry or attempt >= dd.max_regenerations:
            return sorted(accepted, key=lambda a: a.slot), sorted(retry), regenerations
        regenerations += len(retry)
        pending, attempt = retry, attempt + 1
    return sorted(accepted, key=lambda a: a.slot), [], regenerations


def _cid(source_id: str, generator: Generator, slot: int, g: GeneratedImage) -> str:
    return candidate_id(source_id, generator.name, dict(g.params, slot=slot), g.seed)


def _candidate_record(store: DatasetStore, generator: Generator, source_id: str, a: _Accepted) -> dict:
    params = dict(a.image.params, slot=a.slot)
    png = encode_png(a.image.image)
    try:
        image_id, key = store.put_image(png, "png")  # the image lands before its row
    except Exception as exc:
        raise _store_fault(store, "write a candidate image to", exc) from exc
    return validate(
        "candidate",
        {
            "candidate_id": candidate_id(source_id, generator.name, params, a.image.seed),
            "source_id": source_id,
            "generator": generator.name,
            "model": generator.model,
            "params": canonical_json(params),
            "seed": a.image.seed,
            "attempt": a.attempt,
            "image_id": image_id,
            "image_key": key,
            "width": a.image.image.width,
            "height": a.image.image.height,
            "phash": a.phash,
            "colour_hash": a.colour_hash,
            "known_acceptable": a.image.known_acceptable,
            "known_dimensions": list(a.image.known_dimensions),
            "created_at": now_iso(),
        },
    )


def _pending(store: DatasetStore, generator: Generator, config: GenerateConfig) -> tuple[pa.Array, int]:
    """(sources with no group under these settings, sorted; how many sources there are).

    Once per run: the source-id column, each source's group id, and an anti-join against the
    ledger's group-id column (both projections; no row is read whole).
    """
    ids = store.column("sources", "source_id").combine_chunks()
    gids = pa.array([group_id(s, generator, config) for s in ids.to_pylist()], pa.string())
    done = store.column(GROUPS.name, "group_id", where=pc.field("generator") == generator.name)
    todo = ids.filter(pc.invert(pc.is_in(gids, value_set=done.combine_chunks())))
    return pc.take(todo, pc.sort_indices(todo)), len(ids)


def pending_source_ids(store: DatasetStore, config: GenerateConfig | None = None) -> list[str]:
    """Sources not yet generated with these settings, sorted: what a flow splits into batches."""
    config = config or GenerateConfig()
    generator = make_generator(config)  # cheap: diffusers loads its pipeline lazily
    return _pending(store, generator, config)[0].to_pylist()


def generate_candidates(
    store: DatasetStore,
    config: GenerateConfig | None = None,
    source_ids: list[str] | None = None,
    generator: Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> GenerateReport:
    """Generate the 4 final candidates of every source (or of ``source_ids``) not yet done.

    Idempotent: a source whose group (same generator settings, base seed and dedupe settings)
    is in the ledger is skipped. A bad source is a reject and the run goes on. A missing model
    (:class:`~aescot.generate.diffusion.ModelNotAvailable`) or a store that cannot be read or written
    (:class:`~aescot.errors.StoreError`) stops the run at once: nothing could succeed, and an outage
    must not be recorded as every source's reject.

    Cost follows the work: without ``source_ids`` the backlog is one anti-join (:func:`_pending`);
    then every chunk of sources reads only its own source rows (the columns generation needs) and
    its own ledger rows, by key.
    """
    config = config or GenerateConfig()
    generator = generator or make_generator(config)
    report = GenerateReport()
    if source_ids is None:
        todo, total = _pending(store, generator, config)
        wanted = todo.to_pylist()
        report.sources = report.skipped = total - len(wanted)
        if progress and report.skipped:
            progress(report.skipped)
    else:
        wanted = list(dict.fromkeys(source_ids))
    cfg_json = canonical_json(group_config(generator, config))
    cand_rows: list[dict] = []
    group_rows: list[dict] = []
    pending_rejects: list[Reject] = []

    def flush() -> None:
        # candidates before the ledger row that marks them final (each was validated as it was made)
        store.upsert("candidates", cand_rows, validate=False)
        store.upsert(GROUPS.name, group_rows, validate=False)
        record_rejects(store, pending_rejects)
        report.rejects.extend(pending_rejects)
        cand_rows.clear(), group_rows.clear(), pending_rejects.clear()

    for sid, row, gid, done in _chunked_sources(store, wanted, generator, config):
        report.sources += 1
        if progress:
            progress(1)
        if row is None:
            pending_rejects.append(
                Reject(STAGE, sid, "unknown_source", "no such source in the store (ingest it first)")
            )
            continue
        if done:
            report.skipped += 1
            report.skipped_group_ids.append(gid)
            continue
        group_rejects: list[Reject] = []
        try:
            source = load_source(store, row)
            accepted, failed, regenerations = _generate_group(generator, source, config, group_rejects)
            records = [_candidate_record(store, generator, sid, a) for a in accepted]
        except GenerationError as exc:
            pending_rejects.append(Reject(STAGE, sid, exc.reason, exc.detail))
            continue
        except ContractError as exc:  # a bug or a generator returning odd parameters: this source only
            pending_rejects.append(Reject(STAGE, sid, "invalid_candidate", str(exc)))
            continue
        except (ModelNotAvailable, MemoryError, StoreError):
            raise  # nothing else could succeed either: stop the run, keep what is flushed
        except Exception as exc:  # one source's failure (odd size, pipeline error) is its reject
            if (
                "OutOfMemory" in type(exc).__name__
            ):  # torch.OutOfMemoryError: lower batch_size/size and re-run
                raise
            log.warning("generation failed for source %s: %s", sid[:12], exc)
            pending_rejects.append(Reject(STAGE, sid, "generation_failed", f"{type(exc).__name__}: {exc}"))
            continue
        for slot in failed:
            group_rejects.append(
                Reject(
                    STAGE,
                    f"{gid}:slot{slot}",
                    "near_duplicate_exhausted",
                    f"source {sid[:12]} slot {slot}: still a near-duplicate after "
                    f"{config.dedupe.max_regenerations} new seeds",
                    sid,
                )
            )
        pending_rejects.extend(group_rejects)
        cand_rows.extend(records)
        group_rows.append(
            {
                "group_id": gid,
                "source_id": sid,
                "generator": generator.name,
                "model": generator.model,
                "config": cfg_json,
                "candidate_ids": [r["candidate_id"] for r in records],
                "failed_slots": failed,
                "regenerations": regenerations,
                "finished_at": now_iso(),
            }
        )
        report.generated += 1
        report.candidates += len(records)
        report.regenerations += regenerations
        report.incomplete += bool(failed)
        report.group_ids.append(gid)
        if len(group_rows) >= config.flush_every:
            flush()
    flush()
    return report


def _chunked_sources(
    store: DatasetStore, wanted: list[str], generator: Generator, config: GenerateConfig
) -> Iterator[tuple[str, dict | None, str, bool]]:
    """``(source id, its row or None, its group id, whether that group is final)`` for each wanted
    source, reading :data:`READ_CHUNK` sources' rows and ledger rows at a time, by key."""
    for i in range(0, len(wanted), READ_CHUNK):
        chunk = wanted[i : i + READ_CHUNK]
        rows = {r["source_id"]: r for r in store.read("sources", SOURCE_COLUMNS, keys=chunk)}
        gids = [group_id(sid, generator, config) for sid in chunk]
        done = set(store.read_arrow(GROUPS.name, ["group_id"], keys=gids).column("group_id").to_pylist())
        for sid, gid in zip(chunk, gids):
            yield sid, rows.get(sid), gid, gid in done
