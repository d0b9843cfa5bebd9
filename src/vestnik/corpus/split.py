"""Last pass: the manifest (every row's final verdict), the rejects list and the train/val split.

The split is a pure function of the usable ids and a seed: ids are ordered by a seeded hash and
the first `val_size` go to validation, so adding utterances to a corpus moves no existing one
between the two sets.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from vestnik import layout
from vestnik.errors import VestnikError
from vestnik.io import read_tsv, write_json, write_tsv

log = logging.getLogger("vestnik.corpus")

MANIFEST_FIELDS = (
    "entry", "line", "id", "source_wav", "sample_rate", "channels", "status", "reason",
    "split", "wav", "mel", "frames", "seconds", "text",
)
REJECTED_FIELDS = ("entry", "line", "id", "source_wav", "status", "reason", "text")
SPLIT_FIELDS = ("id", "wav", "mel", "frames", "seconds", "text")


def split_ids(ids: Sequence[str], val_size: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, val) ids, each sorted; at least one id always stays in training."""
    if len(ids) < 2:
        raise VestnikError(f"the corpus has {len(ids)} usable utterance(s); at least 2 are needed")
    val_size = max(1, min(val_size, len(ids) - 1))

    def key(ident: str) -> str:
        return hashlib.sha256(f"{seed}:{ident}".encode()).hexdigest()

    val = set(sorted(ids, key=key)[:val_size])
    return sorted(i for i in ids if i not in val), sorted(val)


def _reason_kind(reason: str) -> str:
    """A reason without its per-file details, for counting."""
    return reason.split(" (")[0]


def finalize_corpus(
    scan_tsv: str | os.PathLike,
    shard_dirs: Sequence[str | os.PathLike],
    out: str | os.PathLike | Mapping[str, str | os.PathLike],
    val_size: int,
    seed: int,
) -> dict:
    """Write the manifest, rejects, train and val tables and the summary.

    `out` is the rule's declared outputs (keys of vestnik.layout.CORPUS_FILES), or a folder
    that gets the layout's file names.
    """
    files = layout.outputs(out, layout.CORPUS_FILES)
    processed: dict[str, dict] = {}
    for folder in shard_dirs:
        for item in read_tsv(Path(folder) / "items.tsv"):
            processed[item["entry"]] = item
    rows = []
    for row in read_tsv(scan_tsv):
        row = {**row, "source_wav": row["wav"], "wav": ""}
        if row["status"] != "rejected":
            item = processed.get(row["entry"])
            if item is None:
                row.update(status="rejected", reason="missing from its preprocessing shard")
            elif item["status"] == "rejected":
                row.update(status="rejected", reason=item["reason"])
            else:
                row.update({key: item[key] for key in ("wav", "mel", "frames", "seconds")})
        rows.append(row)
    usable = {row["id"]: row for row in rows if row["status"] != "rejected"}
    train, val = split_ids(list(usable), val_size, seed)
    for ident in train:
        usable[ident]["split"] = "train"
    for ident in val:
        usable[ident]["split"] = "val"
    write_tsv(files["manifest"], MANIFEST_FIELDS, rows)
    write_tsv(files["rejected"], REJECTED_FIELDS, [row for row in rows if row["status"] != "ok"])
    write_tsv(files["train"], SPLIT_FIELDS, [usable[i] for i in train])
    write_tsv(files["val"], SPLIT_FIELDS, [usable[i] for i in val])
    statuses = Counter(row["status"] for row in rows)
    reasons = Counter(_reason_kind(row["reason"]) for row in rows if row["status"] == "rejected")
    repairs = Counter(
        part.split(" (")[-1].rstrip(")")
        for row in rows if row["status"] == "repaired" for part in row["reason"].split("; ")
    )
    summary = {
        "rows": len(rows),
        "ok": statuses["ok"],
        "repaired": statuses["repaired"],
        "rejected": statuses["rejected"],
        "rejected_by_reason": dict(sorted(reasons.items())),
        "repaired_by_kind": dict(sorted(repairs.items())),
        "train": len(train),
        "val": len(val),
        "hours": round(sum(float(usable[i]["seconds"]) for i in usable) / 3600, 4),
    }
    write_json(files["summary"], summary)
    log.info(
        "corpus: %d rows -> %d ok, %d repaired, %d rejected; train %d, val %d (%.2f h)",
        summary["rows"], summary["ok"], summary["repaired"], summary["rejected"],
        summary["train"], summary["val"], summary["hours"],
    )
    for reason, count in summary["rejected_by_reason"].items():
        log.info("  rejected %5d  %s", count, reason)
    for kind, count in summary["repaired_by_kind"].items():
        log.info("  repaired %5d  %s", count, kind)
    print(
        f"corpus: {summary['ok']} ok, {summary['repaired']} repaired, "
        f"{summary['rejected']} rejected; train {len(train)}, val {len(val)}"
    )
    return summary


def espeak_split(sentences_file: str | os.PathLike, folder: str | os.PathLike, count: int,
                 val_size: int = 2, seed: int = 1) -> Path:
    """A small corpus in one call, without RUSLAN: `count` eSpeak utterances, scanned, cleaned
    in one shard and split as the workflow's rules do. Returns the folder of train.tsv and
    val.tsv (for benchmarks and quick trials of the trainers)."""
    from vestnik.corpus.espeak_corpus import build_espeak_corpus
    from vestnik.corpus.manifest import scan_corpus
    from vestnik.corpus.preprocess import CleanSettings, process_shard

    folder = Path(folder)
    build_espeak_corpus(sentences_file, folder / "corpus", limit=count)
    scan_corpus(folder / "corpus", folder / "scan.tsv", 1)
    process_shard(folder / "corpus", folder / "scan.tsv", 0, folder / "shards" / "0",
                  CleanSettings.from_config())
    finalize_corpus(folder / "scan.tsv", [folder / "shards" / "0"], folder / "data",
                    val_size=val_size, seed=seed)
    return folder / "data"
