"""Checkpoints and tensor files on disk, for every substrate: a LoRA adapter (or an MLP's whole
state) as safetensors beside the checkpoint's ``ecosim.json``, each file written atomically
(``rundir.atomic_write``). The file and tensor names are those of existing run directories, so
old runs still resume."""
from __future__ import annotations

import json
from pathlib import Path

from ecosim.store.rundir import atomic_write

ADAPTER = "adapter.safetensors"   # a LoRA adapter: {parameter name: tensor}, applied to the start
STATE = "model.safetensors"       # a whole small model's state dict (mlp)
META = "ecosim.json"              # how the checkpoint was made (meta["train"] rebuilds an adapter)


def save_tensors(file: Path, tensors: dict) -> None:
    """``tensors`` ({name: tensor}) as one safetensors file, written atomically."""
    from safetensors.torch import save_file
    atomic_write(Path(file), lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)))


def load_tensors(file: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(file))


def save(path: Path, meta: dict, tensors: dict | None = None, name: str = ADAPTER, full=None) -> None:
    """Checkpoint directory ``path``: ``tensors`` as ``name`` (a LoRA adapter by default) where
    there are some; else, unless the model is its start as is (``meta["same_as_start"]``: a
    prompted teacher or the base, rebuilt from the start), ``full(path)`` writes the whole model.
    Then ``ecosim.json``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if tensors is not None:
        save_tensors(path / name, tensors)
    elif not meta.get("same_as_start") and full is not None:
        full(path)
    atomic_write(path / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))


def load(path: Path, start, meta: dict, full):
    """The model ``save`` stored: its adapter applied to ``start`` (the model it was trained
    from), ``start`` itself, or ``full(path)``, the whole model."""
    path = Path(path)
    if (path / ADAPTER).exists():
        from ecosim.substrates.common.training import apply_adapter
        return apply_adapter(start, load_tensors(path / ADAPTER), meta["train"])
    if meta.get("same_as_start"):
        return start
    return full(path)


# ----------------------------------------------------------------- soft labels beside a dataset
SOFT = ".soft.safetensors"  # a logits-channel dataset's soft labels, beside its jsonl


def soft_path(path: Path, suffix: str) -> Path:
    """Where dataset ``path`` (named NAME``suffix``) keeps its soft labels: NAME.soft.safetensors."""
    return Path(path).with_name(Path(path).name.removesuffix(suffix) + SOFT)


def save_soft(path: Path, suffix: str, soft: list) -> None:
    """Soft labels, one (index [T, k] or None, prob [T, k]) pair per example of dataset ``path``,
    as one safetensors file beside it: the rows of every example concatenated ("prob", "idx"
    where indices are kept) and each example's row count ("lengths")."""
    t = {"lengths": _lengths([p for _, p in soft]), "prob": _cat([p for _, p in soft])}
    if soft[0][0] is not None:
        t["idx"] = _cat([i for i, _ in soft])
    save_tensors(soft_path(path, suffix), t)


def load_soft(path: Path, suffix: str) -> list | None:
    """The soft labels ``save_soft`` stored beside dataset ``path`` (None: it has none)."""
    sp = soft_path(path, suffix)
    if not sp.exists():
        return None
    t = load_tensors(sp)
    n = t["lengths"].tolist()
    probs = t["prob"].split(n)
    idx = t["idx"].split(n) if "idx" in t else [None] * len(n)
    return list(zip(idx, probs))


def _lengths(rows: list):
    import torch
    return torch.tensor([len(r) for r in rows], dtype=torch.int64)


def _cat(rows: list):
    import torch
    return torch.cat(rows).contiguous()
