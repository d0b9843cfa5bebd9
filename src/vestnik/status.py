"""`vestnik status`: which jobs and experiments are done, stale, missing or failed.

Snakemake itself decides what is stale, so this asks it (`snakemake --summary`): an output is
stale when an input is newer or when the rule's code, input set or params changed (a job's
settings are params, so editing its config block makes it stale). The per-file rows are grouped
into one line per config job and per training experiment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vestnik import engines, layout
from vestnik.config import ROOT, check_job, load_config
from vestnik.errors import VestnikError
from vestnik.layout import ERROR_RECORD
from vestnik.runner import read_error_record

JOB_ROOT = layout.JOBS_DIR
REPORT_ROOT = layout.REPORT + "/"
DATA_ROOT = layout.DATA + "/"
EXPERIMENT_ROOT = layout.MODELS
EXPERIMENT_OUTPUTS = layout.EXPERIMENT_OUTPUTS
STATES = ("done", "stale", "missing", "failed")


@dataclass
class Row:
    """One output file of `snakemake --summary`."""

    path: str
    rule: str
    status: str
    pending: bool


@dataclass
class Unit:
    """A config job or a training experiment, and where it stands."""

    kind: str
    name: str
    state: str
    detail: str
    outputs: int = 0
    present: int = 0
    stale_files: list[str] = field(default_factory=list)


def parse_summary(text: str) -> list[Row]:
    """Rows of `snakemake --summary` output (anything before its header line is ignored)."""
    rows: list[Row] = []
    columns: list[str] | None = None
    for line in text.splitlines():
        cells = line.split("\t")
        if columns is None:
            if cells[:1] == ["output_file"]:
                columns = cells
            continue
        if len(cells) != len(columns):
            continue
        record = dict(zip(columns, cells, strict=True))
        rows.append(
            Row(
                path=record["output_file"],
                rule=record["rule"],
                status=record["status"],
                pending=record["plan"] == "update pending",
            )
        )
    if columns is None:
        raise VestnikError("snakemake --summary printed no table")
    return rows


def _error_summary(stderr: str) -> str:
    """Snakemake's error in one line: the exception's first line and the files it names."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if re.match(r"\w+(Exception|Error)\b", line):
            rest = [x for x in lines[i + 1 :] if not x.startswith(("output:", "File "))]
            return " ".join([line.split(" in file ")[0] + ":", *rest[:4]])
    return " ".join(lines[-3:])


def run_summary(
    workdir: Path, config_path: Path, snakefile: Path, targets: list[str]
) -> tuple[list[Row], str]:
    """Ask Snakemake for the state of every output of `targets`; (rows, error text or "")."""
    args = [
        sys.executable, "-m", "snakemake", "--summary", "--nolock",
        "--snakefile", str(snakefile), "--directory", str(workdir),
    ]
    if config_path.resolve() != (workdir / "config" / "config.yaml").resolve():
        args += ["--configfile", str(config_path.resolve()), "--replace-workflow-config"]
    env = dict(os.environ)
    src = str(ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        [*args, *targets], capture_output=True, text=True, env=env, timeout=600
    )
    if proc.returncode != 0:
        return [], _error_summary(proc.stderr) or f"snakemake exited with {proc.returncode}"
    return parse_summary(proc.stdout), ""


def _first_error(log_dir: Path, workdir: Path) -> str:
    """The first ERROR line of the newest log of a unit that has one, with its file, or "".

    Only for results without error records (written by an older version of the workflow).
    """
    if not log_dir.is_dir():
        return ""
    for log in sorted(log_dir.rglob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if " ERROR " in line:
                return f"{log.relative_to(workdir)}: {line.split(': ', 1)[-1]}"
    return ""


def recorded_error(folder: Path) -> str:
    """The newest error record (vestnik.runner) under a unit's result folder, as one line."""
    if not folder.is_dir():
        return ""
    records = [r for p in folder.rglob(ERROR_RECORD) if (r := read_error_record(p))]
    if not records:
        return ""
    record = max(records, key=lambda r: r.get("time", 0))
    message = record["message"].replace("\n", " ")
    where = record.get("log") or record.get("rule")
    return f"{where}: {message}" if where else message


def classify(
    kind: str,
    name: str,
    rows: list[Row],
    log_dir: Path | None = None,
    workdir: Path = Path("."),
    results: Path | None = None,
) -> Unit:
    """Done, stale, missing or failed, from a unit's summary rows.

    Stale: an output exists but Snakemake would remake it (its inputs, code or params changed).
    Done: every output exists and none needs remaking. Otherwise the unit is missing (not run yet,
    or partly run), or failed when an error record under `results` (or else its logs) says so.
    """
    present = [r for r in rows if r.status != "missing"]
    unit = Unit(kind, name, "missing", "", outputs=len(rows), present=len(present))
    outdated = [r for r in present if r.pending]
    if outdated:
        unit.state = "stale"
        unit.stale_files = [r.path for r in outdated]
        by_reason: dict[str, list[str]] = {}
        for row in outdated:
            reason = row.status if row.status != "ok" else "an input will be remade"
            rules = by_reason.setdefault(reason, [])
            if row.rule not in rules:
                rules.append(row.rule)
        unit.detail = "; ".join(
            f"{reason} ({', '.join(rules)})" for reason, rules in sorted(by_reason.items())
        )
        return unit
    if rows and len(present) == len(rows):
        unit.state, unit.detail = "done", f"{len(rows)} outputs up to date"
        return unit
    error = recorded_error(results) if results else ""
    if not error and log_dir:
        error = _first_error(log_dir, workdir)
    if error:
        unit.state, unit.detail = "failed", error
    elif present:
        unit.detail = f"partly run: {len(present)} of {len(rows)} outputs exist"
    else:
        unit.detail = "not run yet"
    return unit


def experiment_targets(config: dict) -> dict[str, list[str]]:
    """Final outputs of every configured experiment: {"block/name": [paths]}.

    Only blocks whose layout is known here are listed (EXPERIMENT_OUTPUTS).
    """
    targets = {}
    for block, outputs in EXPERIMENT_OUTPUTS.items():
        experiments = (config.get(block) or {}).get("experiments") or {}
        for exp in sorted(experiments):
            targets[f"{block}/{exp}"] = [layout.fill(p, name=exp) for p in outputs]
    return targets


def missing_weights(config: dict, job: str, workdir: Path) -> list[str]:
    """Weights files the job's engines load (vestnik.engines) that neither exist nor are
    trained by the workflow; empty for a job whose settings do not fit the schema."""
    try:
        settings = check_job(config, job)
    except VestnikError:
        return []
    missing = []
    for kind in engines.KINDS:
        for weight in engines.weight_files(settings, kind).values():
            trained = weight.experiment in (config.get(weight.trainer) or {}).get(
                "experiments", {})
            path = Path(weight.path)
            if not trained and not (path if path.is_absolute() else workdir / path).is_file():
                missing.append(weight.path)
    return missing


def _holds_results(folder: Path) -> bool:
    """False for a job folder that holds nothing but the records of failed steps."""
    files = [f for f in folder.rglob("*") if f.is_file()]
    return not files or any(not layout.is_error_record(f) for f in files)


def _under(rows: list[Row], prefix: str) -> list[Row]:
    return [r for r in rows if r.path.startswith(prefix)]


def collect_status(
    workdir: str | os.PathLike = ".",
    config_path: str | os.PathLike | None = None,
    snakefile: str | os.PathLike | None = None,
) -> dict:
    """Status of every config job and experiment under `workdir`, plus results the config lacks."""
    workdir = Path(workdir).resolve()
    config_path = Path(config_path) if config_path else workdir / "config" / "config.yaml"
    config = load_config(config_path)
    snakefile = Path(snakefile) if snakefile else ROOT / "Snakefile"
    if not snakefile.is_file():
        raise VestnikError("Snakefile not found (give --snakefile)", path=snakefile)

    rows, error = run_summary(workdir, config_path, snakefile, ["all"])
    if error:
        raise VestnikError(f"snakemake cannot plan the jobs: {error}", path=config_path)
    units = []
    for job in sorted(config.get("jobs", {})):
        unit = classify(
            "job", job, _under(rows, f"{JOB_ROOT}/{job}/"), workdir / "logs" / "jobs" / job,
            workdir, workdir / layout.job_path(layout.JOB, job),
        )
        missing = missing_weights(config, job, workdir)
        if missing and unit.state != "done":
            unit.detail += f"; weights not found: {', '.join(missing)}"
        units.append(unit)
    report = [r for r in rows if r.path.startswith(REPORT_ROOT)]
    if report:
        units.append(classify("report", "run report", report))

    experiments = experiment_targets(config)
    if experiments:
        targets = [path for paths in experiments.values() for path in paths]
        exp_rows, exp_error = run_summary(workdir, config_path, snakefile, targets)
        data = _under(exp_rows, DATA_ROOT)
        if exp_error:
            units.append(Unit("data", "corpus", "missing", f"cannot plan: {exp_error}"))
        elif data:
            units.append(classify("data", "corpus", data, workdir / "logs" / "data",
                                  workdir, workdir / layout.DATA))
        for name in experiments:
            if exp_error:
                units.append(Unit("experiment", name, "missing", "cannot plan (see above)"))
                continue
            block, exp = name.split("/", 1)
            mine = _under(exp_rows, f"{EXPERIMENT_ROOT}/{block}/{exp}/")
            units.append(classify("experiment", name, mine, workdir / "logs" / block / exp,
                                  workdir, workdir / EXPERIMENT_ROOT / block / exp))

    known = {u.name for u in units if u.kind == "job"}
    jobs_dir = workdir / JOB_ROOT
    orphans = sorted(
        p.name for p in jobs_dir.iterdir()
        if p.is_dir() and p.name not in known and _holds_results(p)
    ) if jobs_dir.is_dir() else []
    return {
        "config": str(config_path),
        "units": [asdict(u) for u in units],
        "not_in_config": [f"{JOB_ROOT}/{name}" for name in orphans],
    }


def format_status(status: dict) -> str:
    """A table for people: one line per job and experiment, then a count per state."""
    units = status["units"]
    width = max((len(u["name"]) for u in units), default=4)
    lines = [f"config: {status['config']}"]
    sections = (("job", "jobs"), ("report", "report"), ("data", "training data"),
                ("experiment", "experiments"))
    for kind, title in sections:
        mine = [u for u in units if u["kind"] == kind]
        if not mine:
            continue
        lines.append(f"{title}:")
        lines += [f"  {u['name']:<{width}}  {u['state']:<7}  {u['detail']}" for u in mine]
    if status["not_in_config"]:
        lines.append("results without a config entry: " + ", ".join(status["not_in_config"]))
    counts = {s: sum(u["state"] == s for u in units) for s in STATES}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing configured")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> None:
    status = collect_status(args.directory, args.config, args.snakefile)
    print(json.dumps(status, indent=2, ensure_ascii=False) if args.json else format_status(status))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="which jobs and experiments are done, stale, missing or failed"
    )
    parser.add_argument("--directory", "-d", default=".", help="workflow folder (with results/)")
    parser.add_argument("--config", help="config file (default: DIRECTORY/config/config.yaml)")
    parser.add_argument("--snakefile", help="the workflow's Snakefile (default: this repository's)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=cmd_status)
