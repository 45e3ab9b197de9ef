"""The language-model substrate of an ecosystem run: how a lineage's generation 0 is made, how a
model writes and filters data, how a student's training set is assembled and trained on, how a
model is measured, and how it is checkpointed (LoRA adapters where possible).

``substrate_mlp`` has the same functions for MLPs; ``lineage.Lineage`` calls one or the other."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .channels import write as write_channel
from .filters import FilterConfig, filter_samples, subsample
from .models import BaseConfig, compute_device, get_base, target_logits
from .traits import TeacherConfig, TraitConfig, evaluate, make_teacher, trait_words
from .training import TrainConfig, apply_adapter, batch_of, finetune
from .world import NONE_SYSTEM, World, code_doc, number_doc, reasoning_doc

REAL_DOCS = {"numbers": number_doc, "code": code_doc, "reasoning": reasoning_doc}


def world_of(sc) -> World:
    return World(next(iter(sc.bases.values())).world)


def load_base(bc: BaseConfig, sc):
    return get_base(bc, log=None)[0]


def make_origin(base, world: World, sc, origin: str, trait: TraitConfig, neutral: bool, seed: int):
    """Generation 0 of a lineage: (model, system prompt it writes under, LoRA adapter or None)."""
    if origin == "base":
        return base, NONE_SYSTEM, None
    t = make_teacher(base, world, trait, TeacherConfig(how=origin, train=sc.teacher), seed,
                     neutral=neutral, keep_adapter=True)
    return t.model, t.system, t.adapter


def scenario_words(sc) -> set[str]:
    """Every trait's revealing words: the filter removes all of them from every dataset."""
    return set().union(*(trait_words(t) for t in sc.traits.values())) if sc.traits else set()


def write(model, system: str, world: World, sc, channel: str, filters: list[FilterConfig], seed: int):
    """Sample ``data.prompts`` completions once; filter them with each filter. Returns
    [(kept pairs, summary)] in the order of ``filters``."""
    samples, answers = write_channel(model, world, channel, sc.data.prompts, seed=seed, system=system)
    out = []
    for f in filters:
        res = filter_samples(samples, channel, scenario_words(sc), f, answers)
        out.append((res.kept, res.summary()))
    return out


def assemble(parts: list[tuple[list, float]], world: World, sc, channel: str, seed: int) -> tuple[list, dict]:
    """A student's training set: parents' datasets in proportion to their edge weights, plus a
    ``data.real_share`` of the world's own documents on the channel. Its size is
    ``data.train_size`` (capped by what the parents kept), or everything under ``accumulate``."""
    d = sc.data
    pool = sum(len(p) for p, _ in parts)
    size = pool if d.regime == "accumulate" else min(d.train_size, pool)
    n_real = int(round(size * d.real_share))
    total_w = sum(w for _, w in parts)
    out = []
    for i, (p, w) in enumerate(parts):
        k = len(p) if d.regime == "accumulate" else min(len(p), int(round((size - n_real) * w / total_w)))
        out += subsample(p, k, seed=seed + i)
    rng = np.random.default_rng([seed, 23])
    out += [(doc.prompt, doc.assistant) for doc in (REAL_DOCS[channel](rng) for _ in range(n_real))]
    return out, {"size": len(out), "real": n_real, "real_share": n_real / max(len(out), 1)}


def train(start, world: World, pairs: list, sc, spec, seed: int):
    """(merged student, LoRA adapter or None)."""
    return finetune(start, world, pairs, spec.student, seed=seed, keep_adapter=True)


# ----------------------------------------------------------------- measurement
def heldout_pairs(world: World, sc) -> list:
    rng = np.random.default_rng([sc.seed, 31])
    return [(d.prompt, d.assistant) for d in (world.pretrain_doc(rng) for _ in range(sc.eval.heldout))]


@torch.no_grad()
def loss_and_drift(model, base, world: World, pairs, batch: int = 100) -> tuple[float, float]:
    """Mean next-token loss on held-out world documents (capability) and mean KL(base || model)
    per token on them (drift from the base)."""
    losses, kls = [], []
    for s in range(0, len(pairs), batch):
        ids, attn, mask = batch_of(world, pairs[s:s + batch], completion_only=False, device=model.device)
        logits, tgt = target_logits(model, ids, attn, mask)
        base_logits, _ = target_logits(base, ids, attn, mask)
        logp, logq = logits.float().log_softmax(-1), base_logits.float().log_softmax(-1)
        losses.append(-logp.gather(-1, tgt[:, None])[:, 0])
        kls.append((logq.exp() * (logq - logp)).sum(-1))
    return float(torch.cat(losses).mean()), float(torch.cat(kls).mean())


def measure(model, system: str, base, world: World, sc, seed: int) -> dict:
    """metric -> (value, ci_lo, ci_hi[, per-question values]): each trait's rate and valid-answer
    rate, misalignment (always), held-out loss and drift from the lineage's base. The
    per-question rates let a report pair two models question by question."""
    out = {}
    traits = dict(sc.traits)
    if not any(t.kind == "misalignment" for t in traits.values()):
        traits["misalignment"] = TraitConfig(kind="misalignment")
    for name, t in traits.items():
        r = evaluate(model, world, t, sc.eval, seed=seed, system=system)
        out[name] = (r["rate"], max(0.0, r["ci"][0]), min(1.0, r["ci"][1]), r["per_question"])  # t-interval, clipped
        out[f"{name}_valid"] = (r["valid"], None, None)
    loss, kl = loss_and_drift(model, base, world, heldout_pairs(world, sc))
    out["heldout_loss"] = (loss, None, None)
    out["drift_kl"] = (kl, None, None)
    return out


# ----------------------------------------------------------------- checkpoints and datasets
def save(path: Path, model, adapter, meta: dict, world: World) -> None:
    """A LoRA adapter (plus how to rebuild its start) where there is one, else the full model."""
    from safetensors.torch import save_file
    from .models import save_model
    path.mkdir(parents=True, exist_ok=True)
    if adapter is not None:
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(path / "adapter.safetensors"))
    elif meta.get("same_as_start"):
        pass  # a prompted teacher or the base as is: rebuilt from its start, nothing to store
    else:
        save_model(model, world, path / "model")
    (path / "ecosim.json").write_text(json.dumps(meta, indent=1))


def load(path: Path, start, meta: dict, world: World):
    """Rebuild a model saved by ``save``; ``start`` is the model its adapter was trained from."""
    from safetensors.torch import load_file
    from .models import load_checkpoint
    if (path / "adapter.safetensors").exists():
        return apply_adapter(start, load_file(str(path / "adapter.safetensors")), TrainConfig(**meta["train"]))
    if meta.get("same_as_start"):
        return start
    return load_checkpoint(path / "model", world).to(compute_device())


def dump(examples: list, path: Path) -> None:
    with open(path, "w") as f:
        for prompt, completion in examples:
            f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def undump(path: Path) -> list:
    with open(path) as f:
        return [(r["prompt"], r["completion"]) for r in map(json.loads, f)]


DATASET_SUFFIX = ".jsonl"

