"""Simulated annotators for the demo: real Label Studio users who label as a browser does.

Each one signs up through the organisation's invite link (the sign-up form, with its CSRF token),
reads its own API token, then repeats what the labeling page does: ``GET /api/projects/<id>/next``
for the next task of the label stream, and ``POST /api/tasks/<id>/annotations`` with the result
regions built by :func:`aescot.labelstudio.mapping.answer_to_result`. The stream only hands out
tasks this user has not labelled, so a second demo run submits nothing.

Answers come from the synthetic generator's planted answers (:func:`aescot.items.planted_answer`),
read for each task the stream hands out (its item and four candidates, by key, :class:`PlantedLookup`),
with the annotator's own error rate: a subtle defect is missed more often than an obvious one,
a clean candidate is now and then flagged, a dimension forgotten or added, another acceptable
candidate picked as best. Every answer obeys the answer rules (:func:`aescot.vocab.answer_problems`).

Accounts (email, password, token) are kept in ``<root>/.labelstudio/demo-annotators.json``
(mode 0600, beside the admin credentials), so later runs log in as the same people.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from aescot.ids import derive_id
from aescot.labelstudio.mapping import ITEM_FIELD, answer_to_result
from aescot.vocab import DIMENSIONS, LETTERS, answer_problems

ACCOUNTS_FILE = "demo-annotators.json"


@dataclass(frozen=True)
class Persona:
    """A simulated annotator: a name (their email's local part) and how often they err."""

    name: str
    error_rate: float


DEFAULT_PERSONAS = (
    Persona("ana.careful", 0.03),
    Persona("ben.steady", 0.08),
    Persona("cleo.hasty", 0.18),
)


@dataclass
class LabelingReport:
    """What the simulated annotators did in one session."""

    submitted: dict[str, int] = field(default_factory=dict)
    signed_up: list[str] = field(default_factory=list)
    no_answer: int = 0  # tasks whose item has no planted answer (left for people)

    @property
    def total(self) -> int:
        return sum(self.submitted.values())


def simulated_answer(
    planted: dict[str, Any], detail: dict[str, dict], rate: float, rng: random.Random
) -> dict:
    """One annotator's answer: ``planted`` (acceptable, best, dimensions, scores) with errors at ``rate``.

    ``detail`` maps each letter to its planted ``severity`` (None for clean candidates).
    """
    scores = planted.get("scores") or {}
    acceptable, dims = [], {}
    for letter in LETTERS:
        truth = list(planted["dimensions"][letter])
        severity = (detail.get(letter) or {}).get("severity")
        if truth:  # flawed: missed entirely now and then, a subtle defect far more often
            if rng.random() < rate * (4.0 if severity == "subtle" else 1.0):
                acceptable.append(letter)
                dims[letter] = []
                continue
            seen = [d for d in truth if rng.random() >= rate / 2] or [rng.choice(truth)]
            if rng.random() < rate / 3:
                seen.append(rng.choice(DIMENSIONS))
            dims[letter] = [d for d in DIMENSIONS if d in seen]
        elif rng.random() < rate / 2:  # clean, but flagged
            dims[letter] = [rng.choice(DIMENSIONS)]
        else:
            acceptable.append(letter)
            dims[letter] = []
    ranked = sorted(acceptable, key=lambda L: -(scores.get(L) or 0))
    best = ranked[0] if ranked else None
    if len(ranked) > 1 and rng.random() < rate:
        best = rng.choice(ranked[1:])
    given = {}
    for letter in LETTERS:
        q = scores.get(letter)
        if q is not None:
            q = (5 if letter == best else 4) if letter in acceptable else min(q, 3)
            if rng.random() < rate:
                q = max(1, min(5, q + rng.choice((-1, 1))))
        given[letter] = q
    answer = {"acceptable": sorted(acceptable), "best": best, "dimensions": dims, "scores": given}
    problems = answer_problems(answer)
    assert not problems, problems  # the simulation itself must never produce a contradiction
    return answer


class SimulatedAnnotator:
    """One Label Studio user with its own token, labelling from the label stream."""

    def __init__(self, url: str, persona: Persona, email: str, token: str):
        self.url, self.persona, self.email = url.rstrip("/"), persona, email
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=60)

    def __repr__(self) -> str:  # never the token
        return f"SimulatedAnnotator({self.email!r}, error_rate={self.persona.error_rate})"

    def close(self) -> None:
        self._http.close()

    def next_task(self, project_id: int) -> dict[str, Any] | None:
        """The next task the label stream gives this user, or None when there is none left."""
        r = self._http.get(f"/api/projects/{project_id}/next")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def submit(self, project_id: int, task: dict[str, Any], answer: dict[str, Any], lead_time: float) -> int:
        """Submit an annotation as the labeling page does; returns its id."""
        body = {
            "result": answer_to_result(answer),
            "lead_time": lead_time,
            "was_cancelled": False,
            "ground_truth": False,
            "draft_id": 0,
            "parent_prediction": None,
            "parent_annotation": None,
            "started_at": datetime.now(UTC).isoformat(),
            "project": str(project_id),
        }
        r = self._http.post(
            f"/api/tasks/{task['id']}/annotations/", params={"project": project_id}, json=body
        )
        r.raise_for_status()
        return r.json()["id"]

    def label_all(self, project_id: int, lookup: PlantedLookup, max_tasks: int = 10_000) -> tuple[int, int]:
        """Label every task the stream offers; returns (submitted, skipped for lack of a planted answer)."""
        done = skipped = 0
        seen: set[int] = set()
        for _ in range(max_tasks):
            task = self.next_task(project_id)
            if task is None or task["id"] in seen:
                break
            seen.add(task["id"])
            item_id = (task.get("data") or {}).get(ITEM_FIELD)
            planted, details = lookup(item_id) if item_id else (None, {})
            if planted is None:
                skipped += 1
                continue
            rng = random.Random(derive_id("demo-annotator", self.email, item_id))
            answer = simulated_answer(planted, details, self.persona.error_rate, rng)
            self.submit(project_id, task, answer, lead_time=round(rng.uniform(20, 90), 1))
            done += 1
        return done, skipped


def sign_up(url: str, admin_token: str, email: str, password: str) -> str:
    """Join the organisation through its invite link with the sign-up form; returns the user's token."""
    url = url.rstrip("/")
    invite = httpx.get(f"{url}/api/invite", headers={"Authorization": f"Token {admin_token}"}, timeout=60)
    invite.raise_for_status()
    link = invite.json()["invite_url"]
    with httpx.Client(base_url=url, follow_redirects=True, timeout=60) as web:
        web.get(link).raise_for_status()
        r = web.post(
            link,
            data={"email": email, "password": password, "csrfmiddlewaretoken": web.cookies["csrftoken"]},
            headers={"Referer": url + link},
        )
        r.raise_for_status()
        token = web.get("/api/current-user/token")
        token.raise_for_status()
        return token.json()["token"]


def ensure_annotators(
    url: str, admin_token: str, data_dir: Path, personas: tuple[Persona, ...] = DEFAULT_PERSONAS
) -> tuple[list[SimulatedAnnotator], list[str]]:
    """The simulated annotators of this Label Studio (signed up once, their accounts kept in
    ``data_dir``); returns them and the emails signed up in this call."""
    path = Path(data_dir) / ACCOUNTS_FILE
    accounts = json.loads(path.read_text()) if path.exists() else {}
    new = []
    for p in personas:
        if p.name not in accounts:
            email = f"{p.name}@demo.aescot.local"
            password = derive_id("demo-password", p.name, time.time_ns())[:20]
            accounts[p.name] = {
                "email": email,
                "password": password,
                "token": sign_up(url, admin_token, email, password),
            }
            new.append(email)
            _write_private(path, accounts)
    return [
        SimulatedAnnotator(url, p, accounts[p.name]["email"], accounts[p.name]["token"]) for p in personas
    ], new


def _write_private(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


class PlantedLookup:
    """An item's planted answer and each letter's planted params (kind, severity, quality), read
    when a task first asks for it: the item and its four candidates, by key. The annotators of one
    session label the same items, so each item is read once per session."""

    def __init__(self, store):
        self.store = store
        self._seen: dict[str, tuple[dict | None, dict[str, dict]]] = {}

    def __call__(self, item_id: str) -> tuple[dict | None, dict[str, dict]]:
        if item_id not in self._seen:
            from aescot.items import iter_item_candidates, planted_answer

            got = dict(iter_item_candidates(self.store, [item_id]))
            rows = got.get(item_id)
            if rows is None:
                self._seen[item_id] = (None, {})
            else:
                answer = planted_answer(rows) if all(rows) else None
                details = {L: json.loads(r["params"]) if r else {} for L, r in zip(LETTERS, rows)}
                self._seen[item_id] = (answer, details)
        return self._seen[item_id]


def run_annotators(
    store, url: str, admin_token: str, project_id: int, data_dir: Path, personas=DEFAULT_PERSONAS
) -> LabelingReport:
    """Sign the simulated annotators up (once) and let each label what the stream offers them."""
    lookup = PlantedLookup(store)
    annotators, new = ensure_annotators(url, admin_token, data_dir, personas)
    report = LabelingReport(signed_up=new)
    try:
        for ann in annotators:
            done, skipped = ann.label_all(project_id, lookup)
            report.submitted[ann.email] = done
            report.no_answer = max(report.no_answer, skipped)
    finally:
        for ann in annotators:
            ann.close()
    return report
