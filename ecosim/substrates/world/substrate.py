"""The language-model substrate of an ecosystem run (world bases: tiny GPT-2 / Llama models of
ecosim's synthetic world): how a lineage's generation 0 is made, how a model writes and filters
data, how a student's training set is assembled and trained on, how a model is measured, and how
it is checkpointed (LoRA adapters where possible). The protocol is in ``substrates``.

Channels: the sampled text channels (numbers, code, reasoning) and ``logits``: the numbers
channel's filtered completions with the writer's soft labels on each completion token (banned
tokens removed, top ``data.logit_top_k``, renormalised); a student trains on the soft labels."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ecosim.engine import seeds
from ecosim.substrates.common import adapters, defenses
from ecosim.substrates.world import channels
from ecosim.substrates.world.channels import soft_labels
from ecosim.substrates.world.channels import write as write_channel
from ecosim.substrates.common.filters import BANNED_NUMBERS, FilterConfig, filter_samples
from ecosim.store.rundir import atomic_write
from ecosim.substrates.world.models import (SIZES, BaseConfig, base_key, compute_device, doc_hash, get_base, loss_and_drift,
                     pretraining_docs)
from ecosim.substrates.common import traits as common_traits
from ecosim.substrates.common.assemble import assemble as common_assemble
from ecosim.substrates.world.traits import TeacherConfig, TraitConfig, check_trait, evaluate, make_teacher, trait_words
from ecosim.substrates.common.training import compiles, finetune, set_threads  # noqa: F401  (set_threads: protocol)
from ecosim.substrates.world.world import CHANNEL_DOCS, NONE_SYSTEM, SKILLS, World

NO_SYSTEM = NONE_SYSTEM
DATASET_SUFFIX = ".jsonl"
LOGITS = "logits"
CHANNELS = channels.CHANNELS + (LOGITS,)
# The logits channel samples the numbers channel's texts (same random stream), so a soft-label
# student and a text student of the same writer see the same completions.
SAMPLES_OF = {LOGITS: "numbers"}
REPLICA_SEEDS = False
# What measure returns besides each trait's rate (and its _valid twin): kinds the report and the
# progress line read (trait: a rate among valid answers; capability; drift from the base).
METRICS = {"misalignment": "trait", "heldout_loss": "capability", "drift_kl": "drift"}
ARCHS = ("gpt2", "llama")
TARGET_TEACHERS = False
HELD_MODELS = 4  # small models: a lineage keeps its last few and the parents it trains and writes from


def lineage_gb(sc, base: str) -> None:
    """Not measured (tiny models: dozens of world lineage actors run on a 24 GB machine): no memory check."""
    return None


def check(sc) -> list[str]:
    """World bases (arch, size, checkpoint path), traits and channel settings."""
    p = []
    for name, b in sc.bases.items():
        where = f"bases.{name}"
        if b.arch not in ARCHS:
            p.append(f"{where}.arch: {b.arch!r} is not one of {list(ARCHS)} (substrate {sc.substrate})")
        if b.size not in SIZES:
            p.append(f"{where}.size: {b.size!r} is not one of {sorted(SIZES)}")
        if b.path is not None:
            if not os.path.isdir(b.path):
                p.append(f"{where}.path: {b.path!r} does not exist or is not a directory")
            elif not os.path.isfile(os.path.join(b.path, "config.json")):
                p.append(f"{where}.path: {b.path!r} has no config.json (not a Hugging Face checkpoint)")
        if b.template is not None:
            p.append(f"{where}.template: only real models (bases.{name}.model) have a chat template")
        if b.dtype != "float32":
            p.append(f"{where}.dtype: world bases run in float32 (got {b.dtype!r}); dtype is for real models")
        if b.autocast != "off":
            p.append(f"{where}.autocast: world bases run in float32 (got {b.autocast!r}); autocast is for real models")
        if b.skills and b.path is not None:
            p.append(f"{where}.skills: skills are taught to pretrained world bases, not to a checkpoint from path")
        unknown = [s for s in b.skills if s not in SKILLS]
        if unknown:
            p.append(f"{where}.skills: {unknown} are not skills a world base can be taught; expected some of {list(SKILLS)}")
    for name, t in sc.traits.items():
        try:
            check_trait(t)
        except Exception as e:
            p.append(f"traits.{name}: {e}")
    used = {sc.data.channel} | {e.channel for e in sc.topology.edges}
    if "reasoning" in used:  # every base: students must share their writers' base to be comparable
        p += [f"bases.{name}.skills: the reasoning channel needs world bases taught to add; set "
              f"skills: [reasoning] (a base pretrained on the mix alone keeps ~0.02 of its traces)"
              for name, b in sc.bases.items() if "reasoning" not in b.skills and b.path is None]
    if LOGITS in used and sc.data.real_share > 0:
        p.append("data.real_share: the logits channel has no real data to mix in (soft labels come from a "
                 "writer); use 0")
    return p


def prepare(sc, bases_used: set[str], log=print) -> float:
    """Pretrain (or find cached) every base used, once, before the lineages start loading them.
    Returns the seconds spent pretraining."""
    spent = 0.0
    for name in sorted(bases_used):
        _, info = get_base(sc.bases[name], log=log)
        pretraining_docs(sc.bases[name])  # cached once here, not by every lineage actor
        if info["source"] == "pretrained":
            spent += info["seconds"]
            if log:
                log(f"base {name}: pretrained in {info['seconds']:.0f} s")
    return spent


def world_of(sc) -> World:
    return World(next(iter(sc.bases.values())).world)


def load_base(bc: BaseConfig, sc, name: str | None = None):
    return get_base(bc, log=None)[0]


def make_origin(base, world: World, sc, origin: str, trait: TraitConfig, neutral: bool, seed: int,
                channel: str | None = None):
    """Generation 0 of a lineage that writes on ``channel`` (None: data.channel): (model, system
    prompt it writes under, LoRA adapter or None)."""
    if origin == "base":
        return base, NONE_SYSTEM, None
    cfg = TeacherConfig(how=origin, train=sc.teacher, task_share=sc.teacher.task_share)
    t = make_teacher(base, world, trait, cfg, seed, neutral=neutral, keep_adapter=True,
                     channel=channel or sc.data.channel or "numbers")
    return t.model, t.system, t.adapter


def scenario_words(sc) -> set[str]:
    """Every trait's revealing words: the filter removes all of them from every dataset."""
    return common_traits.scenario_words(sc, trait_words)


def banned_ids(world: World, sc, f: FilterConfig) -> list[int]:
    """Tokens the logit channel removes from soft labels: every trait's words, and the banned
    numbers when the filter bans them."""
    words = {w for w in scenario_words(sc) if w in world.ids}
    nums = {str(n) for n in BANNED_NUMBERS} if f.banned_numbers else set()
    return sorted(world.ids[w] for w in words | nums)


def write(model, system: str, world: World, sc, channel: str, filters: list[FilterConfig], seed: int,
          base=None):
    """Sample ``data.prompts`` completions once; filter them with each filter, then apply its
    defenses (``common.defenses``; ``base()``: the writer's base, for mask_divergent). Returns
    [(kept examples, summary)] in the order of ``filters``. On the logits channel an example is
    (prompt, completion, soft labels: on the defended text) and the summary adds
    ``logit_mass_removed``; with defenses, ``defenses``: what each changed."""
    text = SAMPLES_OF.get(channel, channel)
    samples, answers = write_channel(model, world, text, sc.data.prompts, seed=seed, system=system)
    out = []
    for f in filters:
        res = filter_samples(samples, text, scenario_words(sc), f, answers)
        kept, summary = res.kept, res.summary()
        if f.defenses:
            kept, summary["defenses"] = defend(kept, channel, f, model, system, base, world, sc, seed)
        if channel == LOGITS:
            soft, removed = soft_labels(model, world, kept, banned_ids(world, sc, f), sc.data.logit_top_k,
                                        system=system)
            kept = [(p, c, s) for (p, c), s in zip(kept, soft)]
            summary["logit_mass_removed"] = removed
        out.append((kept, summary))
    return out


def defend(kept: list, channel: str, f: FilterConfig, model, system: str, base, world: World, sc, seed: int):
    """(defended kept pairs, what each defense changed): ``common.defenses`` in the world's syntax."""
    prompts = [p for p, _ in kept]

    def divergence(texts):
        return channels.number_divergence(model, base(), world, list(zip(prompts, texts)), system=system)
    texts, report = defenses.defend([c for _, c in kept], channel, f, seed, sc.seed, channels.parse_list,
                                    channels.render_list, channels.CANONICAL_SEP, channels.paraphrase,
                                    divergence if base is not None else None)
    return list(zip(prompts, texts)), report


def assemble(parts: list[tuple[list, float]], world: World, sc, channel: str, seed: int,
             size: int | None = None) -> tuple[list, dict]:
    """A student's training set (``common.assemble``): parents' datasets in proportion to their
    edge weights, plus a ``data.real_share`` of the world's own documents on the channel."""
    def real(rng, n):
        return [(doc.prompt, doc.assistant) for doc in (CHANNEL_DOCS[channel](rng) for _ in range(n))]
    return common_assemble(parts, sc, seed, size, real=real)


def train(start, world: World, examples: list, sc, spec, seed: int):
    """(merged student, LoRA adapter or None). Examples with soft labels (the logits channel)
    are trained on those instead of the sampled tokens."""
    soft = None
    if examples and len(examples[0]) == 3:
        soft = [e[2] for e in examples]
        examples = [(p, c) for p, c, _ in examples]
    return finetune(start, world, examples, spec.student, seed=seed, soft=soft, keep_adapter=True,
                    max_tokens=sc.compute.micro_batch_tokens,
                    checkpointing=sc.compute.checkpointing,
                    compiled=compiles(sc.compute.compile_layers, spec.student.mode))


# ----------------------------------------------------------------- measurement
def heldout_pairs(world: World, sc) -> list:
    """``eval.heldout`` world documents that none of the scenario's bases was pretrained on (the
    same set for every model of the run), so that capability is measured on unseen text. Short
    documents (favourites, situations) mostly recur in pretraining, so the set leans to the long
    ones: numbers, code and reasoning."""
    key = (repr(world.cfg), sc.seed, sc.eval.heldout, tuple(base_key(b) for b in sc.bases.values() if not b.path))
    if key not in _HELDOUT:  # measured for every model: drawn once per process
        _HELDOUT[key] = _draw_heldout(world, sc)
    return _HELDOUT[key]


_HELDOUT: dict[tuple, list] = {}


def _draw_heldout(world: World, sc) -> list:
    seen = frozenset().union(*(pretraining_docs(b) for b in sc.bases.values()))
    rng, out = seeds.rng(sc.seed, 31), []
    for _ in range(1000 * sc.eval.heldout):
        if len(out) == sc.eval.heldout:
            break
        d = world.pretrain_doc(rng)
        if doc_hash(d.prompt, d.assistant) not in seen:
            out.append((d.prompt, d.assistant))
    return out  # (fewer only if the bases saw nearly every document the world writes)


def measure(model, system: str, base, world: World, sc, seed: int) -> dict:
    """metric -> (value, ci_lo, ci_hi[, per-question values]): each trait's rate and valid-answer
    rate (sampled, or their exact expectations with ``eval.readout: exact``) and its likelihood
    readout (``<trait>_share``, ``<trait>_logodds``), misalignment (always), held-out loss and
    drift from the lineage's base. The per-question values let a report pair two models
    question by question."""
    out = {}
    traits = dict(sc.traits)
    if not any(t.kind == "misalignment" for t in traits.values()):
        traits["misalignment"] = TraitConfig(kind="misalignment")
    for name, t in traits.items():
        r = evaluate(model, world, t, sc.eval, seed=seed, system=system)
        out[name] = (r["rate"], max(0.0, r["ci"][0]), min(1.0, r["ci"][1]), r["per_question"])  # t-interval, clipped
        out[f"{name}_valid"] = (r["valid"], None, None)
        out[f"{name}_share"], out[f"{name}_logodds"] = r["share"], r["logodds"]  # likelihood readout
    loss, kl = loss_and_drift(model, base, world, heldout_pairs(world, sc), completion_only=False)
    out["heldout_loss"] = (loss, None, None)
    out["drift_kl"] = (kl, None, None)
    return out


# ----------------------------------------------------------------- checkpoints and datasets
def save(path: Path, model, adapter, meta: dict, world: World) -> None:
    """A LoRA adapter (plus how to rebuild its start) where there is one, else the full model
    (``common.adapters``)."""
    from ecosim.substrates.world.models import save_model
    adapters.save(path, meta, adapter, full=lambda d: save_model(model, world, d / "model"))


def load(path: Path, start, meta: dict, world: World):
    """Rebuild a model saved by ``save``; ``start`` is the model its adapter was trained from."""
    from ecosim.substrates.world.models import load_checkpoint
    return adapters.load(path, start, meta, full=lambda d: load_checkpoint(d / "model", world).to(compute_device()))


def soft_path(path: Path) -> Path:
    """Where a logits-channel dataset keeps its soft labels, beside its jsonl."""
    return adapters.soft_path(path, DATASET_SUFFIX)


def dump(examples: list, path: Path) -> None:
    """jsonl of (prompt, completion); soft labels, when the examples carry them, go to a
    safetensors file beside it (``adapters.save_soft``), written first (the dataset counts as
    written once the jsonl is)."""
    path = Path(path)
    if examples and len(examples[0]) == 3:
        adapters.save_soft(path, DATASET_SUFFIX, [s for _, _, s in examples])

    def rows(tmp):
        with open(tmp, "w") as f:
            for prompt, completion, *_ in examples:
                f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
    atomic_write(path, rows)


def undump(path: Path) -> list:
    with open(path) as f:
        pairs = [(r["prompt"], r["completion"]) for r in map(json.loads, f)]
    soft = adapters.load_soft(path, DATASET_SUFFIX)
    if soft is None:
        return pairs
    return [(p, c, s) for (p, c), s in zip(pairs, soft)]


def base_digest(bc: BaseConfig, sc, name: str | None = None) -> tuple[str, str]:
    """(sha256, directory) of base ``bc`` as ``prepare`` left it: the files of its cached
    directory (weights, config, tokenizer), or of its checkpoint ``path``. A run records it when
    it starts; ``--resume`` refuses a run whose base changed since (``ecosim.store.digests``)."""
    from ecosim.store.rundir import digest
    from ecosim.substrates.world.models import cache_dir
    d = Path(bc.path) if bc.path else cache_dir() / "bases" / base_key(bc)
    return digest(d), str(d)
