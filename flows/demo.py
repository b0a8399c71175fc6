"""The README demo: the whole job on the embedded defaults, offline, with demo stand-ins.

    python -m flows.demo [--root demo-data] [--sources DIR ...] [--samples 20] [--port 8080]

First run: renders sample product shots, starts a local Label Studio for the dataset, and runs
``build-screening-set`` on an ephemeral Prefect API: synthetic candidates with planted defects,
pushed as tasks. Then three **simulated annotators** (real Label Studio users, each with its own
token and error rate) label through the label stream; a second pass of the flow collects their
annotations (agreement, gold scoring), asks the **demo stand-in teacher** (a loopback Chat
Completions server that reads the planted defects, with noise) for rationales, filters them at
``--min-consistency`` 0.8 and exports Parquet with its card; ``aescot eval`` scores the stand-in on
the test split. Later runs repeat nothing: the stream has no task left for the simulated
annotators, the teacher's samples are cached and the export is unchanged.

Real parts instead of stand-ins: ``AESCOT_MODEL`` (a diffusers model), ``AESCOT_TEACHER_BASE_URL`` /
``AESCOT_TEACHER_MODEL`` (any OpenAI-compatible endpoint), ``--annotators 0`` (people label in
Label Studio), ``LABEL_STUDIO_URL``/``LABEL_STUDIO_API_KEY`` (an existing Label Studio).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=120)
MIN_CONSISTENCY = 0.8


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="demo-data", help="dataset root (default: ./demo-data)")
    ap.add_argument(
        "--sources", nargs="*", default=None, help="your own photos/manifests instead of the samples"
    )
    ap.add_argument("--samples", type=int, default=20, help="sample shots to render on the first run")
    ap.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("AESCOT_DEMO_PORT", "8080")),
        help="port of the local Label Studio (default: $AESCOT_DEMO_PORT or 8080)",
    )
    ap.add_argument("--annotators", type=int, default=3, choices=range(4), help="simulated annotators (0-3)")
    ap.add_argument("--gold-share", type=float, default=0.2, help="share of gold (known-answer) tasks")
    ap.add_argument("-k", "--teacher-samples", type=int, default=4, help="teacher samples per item")
    ap.add_argument("--no-labelstudio", action="store_true", help="generate only; no Label Studio")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    from flows.prefect_api import PrefectUnavailable, quiet_prefect

    quiet_prefect()

    try:
        return Demo(args).run()
    except PrefectUnavailable as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return 2


class Demo:
    def __init__(self, args: argparse.Namespace):
        from aescot.store import DatasetStore

        self.args = args
        self.root = Path(args.root).resolve()
        self.store = DatasetStore(self.root)
        self.times: dict[str, float] = {}
        self.steps: dict[str, list[Any]] = {}
        self.login: tuple[str, str, str] | None = None
        self.stand_in = None
        self.first_run = not (self.root / "tables" / "items.lance").exists()

    def _timed(self, name: str, fn, *a, **kw):
        t = time.monotonic()
        try:
            return fn(*a, **kw)
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.monotonic() - t

    def _keep(self, result: dict[str, Any]) -> None:
        for step, value in result.items():
            self.steps.setdefault(step, []).append(value)

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> int:
        from aescot.demo import SWITCHES
        from flows.prefect_api import ensure_prefect_api

        started = time.monotonic()
        args = self.args
        sources = self._timed("sources", self._sources)
        use_ls = not args.no_labelstudio
        n_annotators = args.annotators if use_ls else 0
        # overlap: every simulated annotator labels every task, and one more person can label by hand
        os.environ.setdefault("AESCOT_LS_ANNOTATORS_PER_TASK", str(n_annotators + 1))
        with ExitStack() as stack:
            own_ls = use_ls and not os.environ.get("LABEL_STUDIO_URL")
            if own_ls and not self._timed("labelstudio start", self._start_labelstudio):
                return 2
            if not os.environ.get("AESCOT_TEACHER_BASE_URL"):
                self.stand_in = stack.enter_context(self._stand_in())
            console.print(
                "[bold]Prefect:[/] starting the ephemeral API (a busy machine may need a minute)..."
            )
            api = self._timed("prefect api", ensure_prefect_api)
            console.print(f"Prefect API at {api}")

            first = self._timed("flow pass 1", self._flow, sources)
            labeled = None
            if n_annotators and isinstance(first.get("push"), dict):
                labeled = self._timed("simulated annotators", self._annotate, first["push"]["project_id"])
            if labeled is not None and labeled.total:
                self._timed("flow pass 2", self._flow, None)
            evaluated = self._timed("aescot eval", self._eval)
            teacher_calls = self.stand_in.calls if self.stand_in else None
        wall = time.monotonic() - started
        self._report(labeled, evaluated, teacher_calls, wall)
        console.print("\n[bold]Switch a stand-in for the real thing[/] (one line each):")
        for name, line in SWITCHES.items():
            console.print(f"  {name:<11} {line}", soft_wrap=True)
        return 0

    def _sources(self) -> list[str]:
        from aescot.samples import write_sample_sources

        if self.args.sources is not None:
            return self.args.sources
        incoming = self.root / "incoming"
        manifest = incoming / "manifest.csv"
        if not manifest.exists():
            write_sample_sources(incoming, n=self.args.samples, size=384)
            console.print(f"rendered {self.args.samples} sample product shots into {incoming}")
        return [str(manifest)]

    def _start_labelstudio(self) -> bool:
        from aescot.labelstudio.server import (
            ServerNotFound,
            ServerStartError,
            local_server_config,
            start_server,
        )

        cfg = local_server_config(self.root, port=self.args.port)
        console.print(
            "[bold]Label Studio:[/] starting (a first start initialises its database: about a minute)..."
        )
        try:
            server = start_server(cfg)
        except (ServerNotFound, ServerStartError) as exc:
            console.print(f"[red]error:[/] {str(exc).splitlines()[0]}", soft_wrap=True)
            return False
        creds = json.loads((cfg.data_dir / "aescot-credentials.json").read_text())
        self.login = (server.url, creds["username"], creds["password"])
        self.ls_token = creds["token"]
        self.ls_url = server.url
        self.ls_data_dir = cfg.data_dir
        return True

    @contextmanager
    def _stand_in(self):
        from aescot.demo.teacher import MODEL, stand_in_teacher

        server = stand_in_teacher(self.store).start()
        os.environ["AESCOT_TEACHER_BASE_URL"] = server.base_url
        os.environ["AESCOT_TEACHER_MODEL"] = MODEL
        console.print(f"[bold]Teacher:[/] demo stand-in {MODEL} on {server.base_url} (reads planted defects)")
        try:
            yield server
        finally:
            server.stop()
            for k in ("AESCOT_TEACHER_BASE_URL", "AESCOT_TEACHER_MODEL"):
                os.environ.pop(k, None)

    def _flow(self, sources: list[str] | None) -> dict[str, Any]:
        from flows.build_screening_set import build_screening_set

        model = os.environ.get("AESCOT_MODEL")
        result = build_screening_set(
            root=str(self.root),
            sources=sources,
            labelstudio=not self.args.no_labelstudio,
            generator="diffusers" if model else "synthetic",
            model=model,
            gold_share=self.args.gold_share,
            samples=self.args.teacher_samples,
            min_consistency=MIN_CONSISTENCY,
        )
        self._keep(result)
        return result

    def _annotate(self, project_id: int):
        from aescot.demo.annotators import DEFAULT_PERSONAS, run_annotators

        if not getattr(self, "ls_url", None):  # an external Label Studio: its admin token from the env
            self.ls_url = os.environ["LABEL_STUDIO_URL"]
            self.ls_token = os.environ["LABEL_STUDIO_API_KEY"]
            self.ls_data_dir = self.root / ".labelstudio"
            self.ls_data_dir.mkdir(parents=True, exist_ok=True)
        personas = DEFAULT_PERSONAS[: self.args.annotators]
        report = run_annotators(
            self.store, self.ls_url, self.ls_token, project_id, self.ls_data_dir, personas
        )
        self.personas = personas
        return report

    def _eval(self) -> dict[str, Any] | None:
        """``aescot eval`` on the export's test split against the teacher endpoint; skipped when the
        export has not changed since the last evaluation."""
        import pyarrow.parquet as pq

        export = self.root / "export"
        files = sorted((export / "rl" / "test").glob("*.parquet"))
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if not rows:
            return {"skipped": "no test split in the export yet"}
        out = self.root / "eval"
        manifest = json.loads((export / "manifest.json").read_text())
        stamp = json.dumps(manifest.get("fingerprint") or manifest.get("inputs") or manifest, sort_keys=True)
        done = out / "export-fingerprint.json"
        if done.exists() and done.read_text() == stamp and (out / "report.json").exists():
            return {**json.loads((out / "report.json").read_text()), "unchanged": True}
        exe = Path(sys.executable).with_name("aescot")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "aescot.cli.main"]
        env = {
            **os.environ,
            "AESCOT_EVAL_BASE_URL": os.environ.get("AESCOT_EVAL_BASE_URL")
            or os.environ["AESCOT_TEACHER_BASE_URL"],
            "AESCOT_EVAL_MODEL": os.environ.get("AESCOT_EVAL_MODEL") or os.environ["AESCOT_TEACHER_MODEL"],
        }
        proc = subprocess.run(
            [*cmd, "eval", str(export), "--split", "test", "--output", str(out)],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return {"failed": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
        done.write_text(stamp)
        return {**json.loads((out / "report.json").read_text()), "unchanged": False}

    # --- the report ------------------------------------------------------------------------------

    def _report(self, labeled, evaluated, teacher_calls, wall: float) -> None:
        from aescot.status import stage_counts

        steps = self.steps
        pushed = sum(v.get("pushed", 0) for v in steps.get("push", []) if isinstance(v, dict))
        new_ann = labeled.total if labeled else 0
        rationale_calls = sum(v.get("calls", 0) for v in steps.get("rationales", []) if isinstance(v, dict))
        export_changed = any(
            isinstance(v, dict) and v.get("unchanged") is False for v in steps.get("export", [])
        )
        eval_calls = (
            0
            if not evaluated or evaluated.get("unchanged") or "n_items" not in evaluated
            else evaluated["n_items"]
        )

        table = Table("stage", "this run", title=f"this run ({self.root})", title_justify="left")
        for step in ("ingest", "generate", "push", "collect", "rationales", "filter", "export"):
            table.add_row(step, _stage_line(step, steps.get(step, [])))
        if labeled is not None:
            who = ", ".join(f"{k.split('@')[0]} {v}" for k, v in labeled.submitted.items())
            signed = f"; {len(labeled.signed_up)} signed up" if labeled.signed_up else ""
            table.add_row("annotators (simulated)", f"{labeled.total} submitted ({who}){signed}")
        table.add_row("aescot eval", _eval_line(evaluated))
        console.print(table)

        totals = Table("stage", "count", "detail", title="dataset totals", title_justify="left")
        for row in stage_counts(self.store):
            totals.add_row(row.stage, str(row.count), row.detail)
        console.print(totals)
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in self.times.items())
        console.print(f"[bold]Wall time:[/] {wall:.1f} s ({timing})", soft_wrap=True)

        self._print_variety()
        self._print_agreement()
        self._print_filter()
        self._print_export(evaluated)
        if self.stand_in is not None:
            from aescot.demo.teacher import MODEL as STAND_IN_MODEL

            console.print(
                f"[bold]Teacher:[/] demo stand-in {STAND_IN_MODEL} answered {teacher_calls} requests in this "
                f"run ({rationale_calls} rationale samples, "
                f"{eval_calls} eval items); it reads planted defects, it is not a model",
                soft_wrap=True,
            )
        summary = {
            "first_run": self.first_run,
            "wall_s": round(wall, 1),
            "times": {k: round(v, 2) for k, v in self.times.items()},
            "tasks_pushed": pushed,
            "annotations_submitted": new_ann,
            "teacher_requests": teacher_calls,
            "rationale_calls": rationale_calls,
            "export_changed": export_changed,
            "eval": None if not evaluated else {k: v for k, v in evaluated.items() if k != "predictions"},
        }
        (self.root / "demo-summary.json").write_text(json.dumps(summary, indent=1, default=str))
        if not self.first_run:
            if not (pushed or new_ann or teacher_calls or export_changed):
                console.print(
                    "[bold green]Second run: nothing repeated[/] - 0 tasks pushed, 0 annotations submitted, "
                    "0 teacher calls, export unchanged.",
                    soft_wrap=True,
                )
            else:
                console.print(
                    f"This run advanced the dataset: {pushed} tasks pushed, {new_ann} annotations, "
                    f"{teacher_calls or 0} teacher requests, export {'rebuilt' if export_changed else 'unchanged'}.",
                    soft_wrap=True,
                )
        if self.login:
            url, user, password = self.login
            console.print(
                f"\n[bold]Label Studio[/] (label by hand): {url}   user [bold]{user}[/]   password [bold]{password}[/]"
                f"\nStop it with: .venv/bin/aescot labelstudio stop --root {self.root}",
                soft_wrap=True,
            )

    def _print_variety(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        from aescot.items import iter_planted_answers

        n_items = self.store.count("items")
        if not n_items:
            return
        gold = len(self.store.column("items", "gold", where=pc.field("gold") == pa.scalar(True)))
        spread = Counter(len(a["acceptable"]) for _, a in iter_planted_answers(self.store))  # by chunk
        console.print(
            f"[bold]Items:[/] {n_items} ({gold} gold = {gold / n_items:.0%}, configured "
            f"{self.args.gold_share:.0%}); acceptable candidates per item: "
            + ", ".join(f"{k}: {spread[k]}" for k in range(5)),
            soft_wrap=True,
        )

    def _print_agreement(self) -> None:
        from aescot.labelstudio import agreement_report
        from aescot.labelstudio.agreement import gold_report

        if not self.store.count("annotations"):
            return
        rep = agreement_report(self.store)
        table = Table("field", "Krippendorff's alpha", "units", title="agreement", title_justify="left")
        for f in rep.fields:
            table.add_row(f.field, "n/a" if f.alpha is None else f"{f.alpha:.3f}", str(f.units))
        console.print(table)
        gold = gold_report(self.store)
        if gold.annotators:
            gt = Table(
                "annotator",
                "gold items",
                "best acc.",
                "acceptable exact",
                "dimension acc.",
                title=f"gold scoring ({gold.gold_items_pushed} gold tasks)",
                title_justify="left",
            )
            for g in gold.annotators:
                gt.add_row(
                    g.annotator,
                    str(g.gold_items),
                    _pct(g.best_accuracy),
                    _pct(g.acceptable_exact),
                    _pct(g.dimension_accuracy),
                )
            console.print(gt)

    def _print_filter(self) -> None:
        import pyarrow.compute as pc

        if not self.store.count("selections"):
            return
        at = pc.field("min_consistency")  # one row per item (keyed); only this run's threshold
        sel = self.store.read_arrow(
            "selections",
            ["kept", "reason"],
            where=(at > MIN_CONSISTENCY - 1e-9) & (at < MIN_CONSISTENCY + 1e-9),
        )
        decided, kept = sel.num_rows, int(pc.sum(sel.column("kept")).as_py() or 0)
        counts = pc.value_counts(sel.column("reason").combine_chunks()).to_pylist()
        reasons = {c["values"]: c["counts"] for c in counts}
        console.print(
            f"[bold]Filter[/] --min-consistency {MIN_CONSISTENCY}: {decided} decided, [green]{kept} kept[/], "
            f"{decided - kept} dropped"
            + (
                " (" + ", ".join(f"{why} {n}" for why, n in sorted(reasons.items()) if why != "kept") + ")"
                if decided > kept
                else ""
            ),
            soft_wrap=True,
        )

    def _print_export(self, evaluated) -> None:
        import pyarrow.parquet as pq

        export = self.root / "export"
        if not (export / "manifest.json").exists():
            return
        counts = {}
        for fmt in ("sft", "rl", "pairs"):
            files = sorted((export / fmt).glob("*/*.parquet"))
            counts[fmt] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        plots = sorted(str(p.relative_to(export)) for p in (export / "plots").glob("*.png"))
        console.print(
            f"[bold]Export:[/] {export}: " + ", ".join(f"{k} {v} rows" for k, v in counts.items()),
            soft_wrap=True,
        )
        console.print(f"  card: {export / 'README.md'}   plots: {', '.join(plots) or '-'}", soft_wrap=True)
        if evaluated and "model_metrics" in evaluated:
            m, r = evaluated["model_metrics"], evaluated["random_baseline"]
            console.print(
                f"[bold]aescot eval[/] ({evaluated['model']}, {evaluated['n_items']} test items"
                f"{', unchanged export: report kept' if evaluated.get('unchanged') else ''}): best accuracy "
                f"{m['best_accuracy']:.2f} (random {r['best_accuracy']:.2f}), acceptable exact "
                f"{m['acceptable_exact']:.2f} (random {r['acceptable_exact']:.2f}); report in {self.root / 'eval'}",
                soft_wrap=True,
            )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


SHOWN = {
    "ingest": ("added", "already_present", "rejected"),
    "generate": ("items", "gold_items", "candidates", "rejected"),
    "push": ("pushed", "already_pushed", "gold_pushed", "rejected"),
    "collect": ("new", "updated", "rejected", "labels_written", "needs_adjudication"),
    "rationales": ("calls", "ok", "cached", "failed", "consistent"),
    "filter": ("decided", "kept", "dropped", "pending"),
}


def _stage_line(step: str, values: list[Any]) -> str:
    """One line for a stage over the flow passes of this run: numbers summed, notes kept."""
    dicts = [v for v in values if isinstance(v, dict)]
    notes = sorted({str(v) for v in values if not isinstance(v, dict)})
    if step == "export":
        last = dicts[-1] if dicts else None
        if last is None:
            return "; ".join(notes) or "-"
        if "skipped" in last:
            return str(last["skipped"])
        splits = ", ".join(f"{k} {n}" for k, n in (last.get("items") or {}).items())
        return ("unchanged" if last.get("unchanged") else "written") + f" (items: {splits})"
    parts = []
    for key in SHOWN.get(step, ()):
        got = [d[key] for d in dicts if key in d]
        if not got:
            continue
        if isinstance(got[0], dict):
            merged = Counter()
            for g in got:
                merged.update(g)
            parts.append(f"{key} " + (", ".join(f"{k} {n}" for k, n in merged.items()) or "0"))
        else:
            parts.append(f"{key} {sum(got)}")
    return ", ".join(parts) or "; ".join(notes) or "-"


def _eval_line(evaluated: dict[str, Any] | None) -> str:
    if not evaluated:
        return "-"
    if "model_metrics" not in evaluated:
        return "; ".join(f"{k}: {v}" for k, v in evaluated.items())
    m = evaluated["model_metrics"]
    state = "unchanged export, report kept" if evaluated.get("unchanged") else "ran"
    return f"{state}: {evaluated['n_items']} test items, best accuracy {m['best_accuracy']:.2f}"


if __name__ == "__main__":
    sys.exit(main())
