"""Project setup from code, idempotent: create or update the project by title, its config,
its instructions (with their example pictures, served by Label Studio) and its image storage.
Re-running changes nothing.

Push and collect do not repeat that setup on every run (it costs five round trips, more than a bulk
import of a thousand tasks): :func:`project_for` returns the project recorded by the last setup when
the settings aescot wants now hash the same (``labelstudio_projects``), and runs
:func:`ensure_project` otherwise, or when the server no longer has the recorded project
(:class:`ProjectGone`). ``aescot labelstudio setup`` always checks the server, and puts back
settings changed in Label Studio's UI.

Upgrading a project pushed by the first release: its tasks carry the source image under the data
key ``source`` (which Label Studio 1.23 never loads). Before the new page is set, every task
lacking :data:`~aescot.labelstudio.labeling.SOURCE_KEY` gets it (a copy of ``source``; nothing is
removed), so old and new tasks render alike; likewise every task lacking
:data:`~aescot.labelstudio.labeling.OUTLINE_KEY` (pushed before the page showed the source's mask)
gets it: the outlined copy of its source (:mod:`aescot.labelstudio.outlines`), or the photo it already
shows. If Label Studio refuses the new page because
annotations made on the old one use a control it no longer has, the project keeps its page (and
says so in ``Project.config_kept``); collect still reads those annotations.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
from label_studio_sdk import LabelStudio

from aescot.labelstudio.assets import data_uri, guideline_pictures, guidelines_html, label_config
from aescot.labelstudio.client import call, http_client, list_tasks, make_client
from aescot.labelstudio.config import LabelStudioConfig
from aescot.labelstudio.labeling import LEGACY_SOURCE_KEY, OUTLINE_KEY, SOURCE_KEY
from aescot.store import DatasetStore, TableSpec, register_table
from aescot.timeutil import now_iso

log = logging.getLogger(__name__)

PROJECTS_TABLE = register_table(
    TableSpec(
        "labelstudio_projects",
        ("project_key",),
        schema=pa.schema(
            [
                pa.field("project_key", pa.string()),  # server URL + title
                pa.field("project_id", pa.int64()),
                pa.field("project_uid", pa.string()),
                pa.field("title", pa.string()),
                pa.field("storage", pa.string()),
                pa.field("settings_sha", pa.string()),  # of the settings and storage last set up
                pa.field("checked_at", pa.string()),
            ]
        ),
    )
)


class ProjectGone(RuntimeError):
    """The recorded project is not on the server any more (deleted): set it up again."""


@dataclass
class Project:
    """The screening project as aescot uses it. ``uid`` is stable across server URLs (id + creation time)."""

    id: int
    uid: str
    title: str
    storage: str
    created: bool = False
    changed: list[str] = field(default_factory=list)
    migrated_tasks: int = 0
    config_kept: str | None = None  # why Label Studio kept the project's previous labeling page


def storage_kind(store: DatasetStore, config: LabelStudioConfig) -> str:
    if config.storage != "auto":
        return config.storage
    if store.is_local:
        return "local"
    scheme = urlsplit(store.root).scheme
    if scheme in ("s3", "s3a"):
        return "s3"
    if scheme in ("gs", "gcs"):
        return "gcs"
    raise ValueError(f"no Label Studio storage for a store on {scheme!r}: use a local, s3:// or gs:// root")


def document_root(store: DatasetStore, config: LabelStudioConfig) -> Path:
    return Path(config.document_root or store.root).resolve()


def local_images_dir(store: DatasetStore, config: LabelStudioConfig) -> Path:
    """The folder Label Studio may serve: the dataset's images, which must lie under the document root."""
    root = document_root(store, config)
    path = (Path(store.root) / "images").resolve()
    if root not in path.parents:
        raise ValueError(
            f"the dataset images folder {path} is not under the server's document root {root}; "
            "set LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (server and aescot) to a parent of it"
        )
    return path


def _picture_source(store: DatasetStore, config: LabelStudioConfig):
    """How the instructions load the guidelines' pictures: from the dataset's images, which Label
    Studio serves to its users (local files); inline as data URIs on object stores (presigned URLs
    expire, and Label Studio presigns task data only)."""
    files = guideline_pictures(config)
    if storage_kind(store, config) != "local":
        return lambda ref: data_uri(files[ref]) if ref in files else ref
    from aescot.labelstudio.mapping import image_ref

    images = f"local:{local_images_dir(store, config)}"
    urls = {
        ref: image_ref(store, store.put_image(path.read_bytes())[1], images, document_root(store, config))
        for ref, path in files.items()
    }
    return lambda ref: urls.get(ref, ref)


def _project_settings(config: LabelStudioConfig, store: DatasetStore) -> dict[str, Any]:
    return {
        "label_config": label_config(config),
        "expert_instruction": guidelines_html(config, _picture_source(store, config)),
        "show_instruction": True,
        "show_skip_button": True,
        "maximum_annotations": config.annotators_per_task,
        "description": config.project_description,
    }


def _same(current: Any, wanted: Any) -> bool:
    """Label Studio strips surrounding whitespace of texts it stores; compare like it does."""
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() == wanted.strip()
    return current == wanted


def _find(client: LabelStudio, config: LabelStudioConfig, title: str) -> Any | None:
    # filtered by title on the server (it matches substrings) and without the per-project task counts
    listed = call(
        config, lambda: list(client.projects.list(title=title, include="id,title")), "list projects"
    )
    matches = [p for p in listed if p.title == title]
    if len(matches) > 1:
        raise RuntimeError(
            f"{len(matches)} Label Studio projects are titled {title!r} (ids "
            f"{[p.id for p in matches]}); rename all but one"
        )
    return matches[0] if matches else None


def _s3_options(config: LabelStudioConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if config.s3_endpoint:
        opts["s3endpoint"] = config.s3_endpoint
    if config.s3_region:
        opts["region_name"] = config.s3_region
    if config.s3_access_key_id and config.s3_secret_access_key:
        opts["aws_access_key_id"] = config.s3_access_key_id.get_secret_value()
        opts["aws_secret_access_key"] = config.s3_secret_access_key.get_secret_value()
    return opts


def storage_ref(store: DatasetStore, config: LabelStudioConfig) -> str:
    """Where the project's tasks point for images: ``local:<folder>`` or ``s3:``/``gcs:<bucket>/<prefix>``."""
    kind = storage_kind(store, config)
    if kind == "local":
        return f"local:{local_images_dir(store, config)}"
    bucket, _, prefix = store.root.split("://", 1)[1].partition("/")
    return f"{kind}:{bucket}/" + f"{prefix.strip('/')}/images".lstrip("/")


def _ensure_storage(
    client: LabelStudio, config: LabelStudioConfig, store: DatasetStore, project_id: int
) -> str:
    kind = storage_kind(store, config)
    title = "aescot images"
    if kind == "local":
        path = str(local_images_dir(store, config))
        Path(path).mkdir(parents=True, exist_ok=True)
        existing = call(
            config, lambda: list(client.import_storage.local.list(project=project_id)), "list storage"
        )
        if not any(s.path.rstrip("/") == path for s in existing):
            call(
                config,
                lambda: client.import_storage.local.create(
                    project=project_id, path=path, title=title, use_blob_urls=True
                ),
                "create local storage",
            )
        return f"local:{path}"
    bucket, _, prefix = store.root.split("://", 1)[1].partition("/")
    prefix = f"{prefix.strip('/')}/images".lstrip("/")
    api = client.import_storage.s3 if kind == "s3" else client.import_storage.gcs
    existing = call(config, lambda: list(api.list(project=project_id)), f"list {kind} storage")
    if not any(s.bucket == bucket and (s.prefix or "").strip("/") == prefix for s in existing):
        extra = _s3_options(config) if kind == "s3" else {}
        call(
            config,
            lambda: api.create(
                project=project_id,
                bucket=bucket,
                prefix=prefix,
                title=title,
                presign=True,
                use_blob_urls=True,
                **extra,
            ),
            f"create {kind} storage",
        )
    return f"{kind}:{bucket}/{prefix}"


def ensure_project(
    store: DatasetStore, config: LabelStudioConfig, client: LabelStudio | None = None
) -> Project:
    """Create the project (by title) or bring its config/instructions/overlap up to date; attach image storage.

    Idempotent: a second call finds everything as wanted and changes nothing (``created`` False,
    ``changed`` empty). Records the project for :func:`project_for`.
    """
    if storage_kind(store, config) == "local":
        local_images_dir(store, config)  # refuse before creating anything
    client = client or make_client(config)
    wanted = _project_settings(config, store)
    found = _find(client, config, config.project_title)
    created, changed, migrated, kept = False, [], 0, None
    current = None
    if found is None:
        found = call(
            config, lambda: client.projects.create(title=config.project_title, **wanted), "create project"
        )
        created = True
    else:
        current = call(config, lambda: client.projects.get(found.id), "get project")
        changed = [k for k, v in wanted.items() if not _same(getattr(current, k, None), v)]
        if "label_config" in changed and (current.task_number or 0) > 0:
            migrated = migrate_task_data(config, found.id, store)
        if changed:
            kept = _update(client, config, found.id, {k: wanted[k] for k in changed})
    full = current if current is not None and not changed else None
    if full is None:
        full = call(config, lambda: client.projects.get(found.id), "get project")
    storage = _ensure_storage(client, config, store, full.id)
    created_at = (
        full.created_at.isoformat() if hasattr(full.created_at, "isoformat") else str(full.created_at)
    )
    project = Project(
        id=full.id,
        uid=f"{full.id}@{created_at}",
        title=full.title,
        storage=storage,
        created=created,
        changed=changed,
        migrated_tasks=migrated,
        config_kept=kept,
    )
    if kept is None:  # a page Label Studio refused is tried again by the next push, as before
        _record(store, config, project, settings_sha(wanted, storage))
    return project


def settings_sha(wanted: dict[str, Any], storage: str) -> str:
    """What setup made true on the server, as one hash: the project settings and the image storage."""
    text = json.dumps({"settings": wanted, "storage": storage}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _project_key(config: LabelStudioConfig) -> str:
    return f"{config.url} {config.project_title}"


def _record(store: DatasetStore, config: LabelStudioConfig, project: Project, sha: str) -> None:
    row = {
        "project_key": _project_key(config),
        "project_id": project.id,
        "project_uid": project.uid,
        "title": project.title,
        "storage": project.storage,
        "settings_sha": sha,
        "checked_at": now_iso(),
    }
    store.upsert(PROJECTS_TABLE.name, [row])


def forget_project(store: DatasetStore, config: LabelStudioConfig) -> None:
    """Drop the recorded project (the server no longer has it): the next :func:`project_for` sets up."""
    store.upsert(
        PROJECTS_TABLE.name,
        [
            {
                "project_key": _project_key(config),
                "project_id": None,
                "project_uid": None,
                "title": None,
                "storage": None,
                "settings_sha": None,
                "checked_at": now_iso(),
            }
        ],
    )


def project_for(store: DatasetStore, config: LabelStudioConfig, client: LabelStudio | None = None) -> Project:
    """The project as the last setup left it, without a round trip, when the settings aescot wants now
    are the ones it set then; else :func:`ensure_project`. Callers that get a 404 for the project raise
    :class:`ProjectGone` and call :func:`forget_project`, then this again."""
    rows = store.read(
        PROJECTS_TABLE.name,
        ["project_id", "project_uid", "title", "storage", "settings_sha"],
        where=pc.field("project_key") == _project_key(config),
    )
    if rows and rows[0]["project_id"] is not None:
        row = rows[0]
        storage = storage_ref(store, config)
        if row["storage"] == storage and row["settings_sha"] == settings_sha(
            _project_settings(config, store), storage
        ):
            return Project(id=row["project_id"], uid=row["project_uid"], title=row["title"], storage=storage)
    return ensure_project(store, config, client)


def _update(
    client: LabelStudio, config: LabelStudioConfig, project_id: int, fields: dict[str, Any]
) -> str | None:
    """Update the project; if Label Studio refuses the new labeling page (annotations made on the old
    one use controls it lacks), update the rest and return its reason."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        call(config, lambda: client.projects.update(project_id, **fields), "update project")
        return None
    except ApiError as exc:
        if "label_config" not in fields or exc.status_code != 400:
            raise
        reason = f"Label Studio kept the previous labeling page of project {project_id}: {exc.body}"
    log.warning("%s", reason)
    rest = {k: v for k, v in fields.items() if k != "label_config"}
    if rest:
        call(config, lambda: client.projects.update(project_id, **rest), "update project")
    return reason


def _outline_refs(store: DatasetStore, config: LabelStudioConfig, item_ids: list[str]) -> dict[str, str]:
    """item id -> reference of its source's outlined copy, for those items whose source has a mask."""
    from aescot.labelstudio.mapping import image_refs
    from aescot.labelstudio.outlines import outline_keys

    items = store.read("items", ["item_id", "source_id", "source_image_key"], keys=item_ids)
    keys, _ = outline_keys(store, items)
    storage = storage_ref(store, config)
    refs = image_refs(store, storage, document_root(store, config) if storage.startswith("local:") else None)
    return {i["item_id"]: refs(keys[i["source_id"]]) for i in items if i["source_id"] in keys}


def migrate_task_data(config: LabelStudioConfig, project_id: int, store: DatasetStore | None = None) -> int:
    """Give every task pushed for an earlier page the keys the page reads now: ``SOURCE_KEY`` (a copy
    of ``source``, first release) and ``OUTLINE_KEY`` (the outlined copy of the task's source when
    ``store`` knows its item and mask, else the photo); returns how many were changed. Idempotent; one
    PATCH per old task."""
    from aescot.labelstudio.mapping import ITEM_FIELD

    changed = 0
    with http_client(config) as http:
        old = []
        for task in list_tasks(config, http, project_id):
            data = task.get("data") or {}
            photo = data.get(SOURCE_KEY) or data.get(LEGACY_SOURCE_KEY)
            if photo is not None and (SOURCE_KEY not in data or OUTLINE_KEY not in data):
                old.append((task, data, photo))
        ids = [d[ITEM_FIELD] for _, d, _ in old if d.get(ITEM_FIELD)]
        outlined = _outline_refs(store, config, ids) if store is not None and ids else {}
        for task, data, photo in old:
            new = {SOURCE_KEY: photo, OUTLINE_KEY: outlined.get(data.get(ITEM_FIELD), photo), **data}

            def patch(task=task, new=new) -> None:
                r = http.patch(f"/api/tasks/{task['id']}", json={"data": new})
                r.raise_for_status()

            call(config, patch, f"migrate task {task['id']}")
            changed += 1
    if changed:
        log.info(
            "project %s: %d tasks pushed for an earlier page now carry %r and %r",
            project_id,
            changed,
            SOURCE_KEY,
            OUTLINE_KEY,
        )
    return changed
