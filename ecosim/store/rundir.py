"""A run directory that checks itself. Every artifact a task makes (a checkpoint directory, a
dataset file) is hashed when it is written, and the task's result is kept as one small JSON
record per task (``records/``) beside the lineage graph. ``--resume`` then trusts nothing it has
not verified: a checkpoint or dataset whose hash no longer matches is recomputed (with whatever
depends on it), and a damaged ``graph.json`` is rebuilt from the records.

Replacing is atomic everywhere: a new file or directory is written under a temporary name and
renamed into place; an old directory is moved aside first and removed last, so a crash at any
point leaves either the old artifact or the new one, never half of one."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path


TMP = re.compile(r"\.(tmp|old)\d+$")  # names of half-written or set-aside artifacts


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, in order)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        raise FileNotFoundError(path)
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path) if f != path else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def dataset_digest(path: Path, suffix: str) -> str:
    """A dataset's hash: its file and the files stored beside it under its name (a logits
    dataset's soft labels: ``kept.jsonl`` with ``kept.soft.safetensors``)."""
    path = Path(path)
    stem = path.name.removesuffix(suffix)
    parts = [digest(path)] + [digest(p) for p in sorted(path.parent.glob(stem + ".*"))
                              if p != path and not TMP.search(p.name)]
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()


def intact(sha: str | None, hash_now) -> bool:
    """The artifact still has the hash recorded when it was written (``hash_now()`` computes it;
    a missing or unreadable artifact is not intact). No recorded hash (a run made before hashes
    were kept): existence, which ``hash_now`` checks, is all there is."""
    try:
        now = hash_now()
    except OSError:
        return False
    return sha is None or now == sha


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: a crash never leaves half a file, and a failed
    write leaves no temporary file behind (and its own error, not the cleanup's)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def atomic_dir(final: Path, write) -> None:
    """``write(tmp_dir)``, then swap it in: the old directory is renamed aside, the new one
    renamed into place, and only then the old one removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp{os.getpid()}")
    old = final.with_name(f"{final.name}.old{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete what a crashed writer left (``*.tmpPID``, ``*.oldPID``); returns what was removed."""
    gone = []
    for p in sorted(Path(run_dir).rglob("*"), key=lambda p: -len(p.parts)):
        if TMP.search(p.name) and p.exists():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p)
    return gone


# ----------------------------------------------------------------- per-task records
def record_path(run_dir: Path, key: tuple) -> Path:
    kind, lineage, g, channel = key
    return Path(run_dir) / "records" / f"{kind}__{lineage}__g{g}{'__' + channel if channel else ''}.json"


def save_record(run_dir: Path, key: tuple, result) -> None:
    """What a finished task returned (a write's summaries, without its examples)."""
    path = record_path(run_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"key": list(key), "result": result}, default=_plain)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _plain(x):
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def load_records(run_dir: Path) -> dict[tuple, object]:
    """Every readable task record; a damaged one is skipped (its task is recomputed)."""
    out = {}
    for p in sorted((Path(run_dir) / "records").glob("*.json")):
        try:
            d = json.loads(p.read_text())
            out[tuple(d["key"])] = d["result"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out
