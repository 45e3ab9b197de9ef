"""Scenario YAMLs: the typed schema of an ecosystem study, its validation (every problem at once)
and its expansion into a plan: the full set of lineages (replicas and matching controls added)
and, for every lineage, the edges its students learn from.

A *lineage* is a vertical sequence of models, one per generation. An *edge* ``src -> dst`` says
that the students of ``dst`` at generation g train on data written by ``src`` at generation
g - lag (lag 1, the default: the previous generation; lag 0: the same generation, so src must be
trained first). A chain is a lineage learning from itself."""
from __future__ import annotations

import dataclasses
import difflib
import zlib
from dataclasses import dataclass, field

import networkx as nx

from ecosim.errors import EcosimError
from ecosim.engine import registry as substrates
from ecosim.substrates.common.bases import BaseConfig
from ecosim.engine.config import Choice, Range, check_fields, load_config
from ecosim.substrates.common.filters import FilterConfig
from ecosim.substrates.mlp.mlp import MLPConfig
from ecosim.substrates.world.models import SIZES
from ecosim.substrates.hf.text import TextSpec
from ecosim.substrates.world.traits import EvalConfig, TeacherConfig, TraitConfig
from ecosim.substrates.common.training import TrainConfig
from ecosim.substrates.world.world import WorldConfig

ORIGINS = ("finetune", "prompt", "base", "none")
REGIMES = ("replace", "accumulate", "accumulate-subsample")
SUBSTRATES = ("lm", "mlp")


def channel_of(sc, channel: str | None = None) -> str:
    return channel or sc.data.channel or substrates.of(sc).CHANNELS[0]


@dataclass
class LineageSpec:
    base: str = "main"                # name in `bases`: what generation 0 is made from
    trait: str | None = None          # name in `traits`; None: a neutral lineage
    origin: str = "finetune"          # how generation 0 gets its trait: finetune | prompt | base | none
    init: str = "base"                # where students start: base (this lineage's) | parent | rotate | a name in `bases`
    rotate: list[str] = field(default_factory=list)   # init=rotate: generation g starts from rotate[(g-1) % len]
    student: TrainConfig = field(default_factory=lambda: TrainConfig(rank=4, alpha=8))
    control: bool = True              # add a matching control lineage (neutral generation 0, same pipeline)
    # >1: lineages name_0, name_1, ... with their own seeds (and, on the mlp substrate, their own
    # initialisations: replica i's bases have seed + i)
    replicas: int = 1


@dataclass
class EdgeSpec:
    src: str = "???"
    dst: str = "???"
    lag: int = 1                      # 1: from src's previous generation; 0: from the same generation
    channel: str | None = None        # None: data.channel
    filter: FilterConfig | None = None  # None: data.filter
    weight: float = 1.0               # share of dst's training set, relative to its other parents


@dataclass
class RandomSpec:
    lineages: list[str] = field(default_factory=list)  # each learns from `parents` others drawn at random
    parents: int = 1
    seed: int = 0


@dataclass
class TopologySpec:
    # Lineages that learn from their own previous generation. None: every lineage that has a
    # generation 0 and no other parent.
    chain: list[str] | None = None
    fan_in: dict[str, list[str]] = field(default_factory=dict)   # child: [parents]
    fan_out: dict[str, list[str]] = field(default_factory=dict)  # parent: [children]
    ring: list[str] = field(default_factory=list)                # each learns from the one before it
    random: RandomSpec = field(default_factory=RandomSpec)
    edges: list[EdgeSpec] = field(default_factory=list)


@dataclass
class DataSpec:
    channel: str | None = None        # None: numbers (lm) or aux_logits (mlp)
    prompts: int = 10000              # samples each model writes per generation
    train_size: int = 8000            # examples per student (capped by what the filter kept)
    regime: str = "replace"           # replace | accumulate | accumulate-subsample
    real_share: float = 0.0           # share of each training set that is the world's own data
    filter: FilterConfig = field(default_factory=FilterConfig)
    logit_top_k: int | None = 32      # logits channel: soft labels kept per token (null: the full vocabulary)


@dataclass
class ComputeSpec:
    ray: bool = True                  # False: run every lineage in this process, one after another
    address: str | None = None        # an existing Ray cluster (also RAY_ADDRESS); None: start one here
    cpus: float | None = None         # CPUs of the local Ray instance; None: all of this machine's
    cpus_per_lineage: float | None = None  # None: cpus shared evenly among the lineages
    gpus_per_lineage: float | None = None  # None: 1/lineages when a GPU is present, else 0
    threads: int = 1                  # torch threads per lineage actor
    max_restarts: int = 3             # a crashed lineage actor restarts this often and reloads
    # A run whose lineages finish no task for this long stops with the nodes in flight named (a
    # lineage waiting for resources that free up never, a stuck worker). Long enough for one
    # real-model training on a GPU; None waits for ever.
    stall_s: float | None = 14400.0


@dataclass
class TrackingSpec:
    wandb: str = "offline"            # offline | online | disabled
    project: str = "ecosim"
    entity: str | None = None


@dataclass
class TeacherSpec(TrainConfig):
    """How generation 0 is fine-tuned: a TrainConfig, plus the share of the channel's own documents
    (tasks answered in format) mixed into its examples, identical for teacher and control
    (traits.TeacherConfig.task_share). None: the substrate's default: on the world 0 for numbers
    and 0.5 for code and reasoning, on real models 0.5 for every channel."""
    task_share: float | None = None


@dataclass
class Scenario:
    name: str = "scenario"
    description: str = ""
    substrate: str = "lm"             # lm: language models; mlp: MLPs passing aux logits on noise
    seed: int = 0                     # every RNG of the run derives from this
    # >1: the whole ecosystem N times, seed i's RNGs derived from (seed, i) (seed 0: `seed` itself);
    # its lineages are named NAME.sI, each paired with its control within its seed. Bases are
    # shared by all seeds (except where the substrate gives replicas their own, as the MLP one does).
    seeds: int = 1
    generations: int = 3              # generations after generation 0
    # Named bases and traits (a YAML's entries replace nothing: these start empty).
    bases: dict[str, BaseConfig] = field(default_factory=dict)
    traits: dict[str, TraitConfig] = field(default_factory=dict)
    lineages: dict[str, LineageSpec] = field(default_factory=dict)
    topology: TopologySpec = field(default_factory=TopologySpec)
    data: DataSpec = field(default_factory=DataSpec)
    teacher: TeacherSpec = field(default_factory=lambda: TeacherSpec(rank=4, alpha=8, steps=150))
    eval: EvalConfig = field(default_factory=EvalConfig)
    mlp: MLPConfig = field(default_factory=MLPConfig)
    text: TextSpec = field(default_factory=TextSpec)  # real models (substrate_hf): prompting and sampling
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    out_dir: str = "runs"
    report: bool = True               # write RUN_DIR/report/index.html at the end (ecosim report)
    # A grid of runs: {key path: [values]}, e.g. {data.real_share: [0, 0.5]}; every cell (one value
    # per key) x seed is a run, and one report compares them (ecosim.sweep). Empty: one run.
    sweep: dict[str, list] = field(default_factory=dict)


# ----------------------------------------------------------------- the schema's rules
# Every numeric range and every fixed choice of a scenario, in one table: {dataclass: {field:
# rule}} (a subclass has its bases' rules; a list field's rule applies to each element; None, an
# unset optional, passes). config.check_fields applies it and reports `key.path: must be ...`.
# Choices that depend on the substrate or on other entries (a trait's kind and target, a base's
# arch per substrate, channels, base and lineage names) are checked in `check` and the substrates.
#
# Upper limits refuse sizes large enough to be a typo (an extra zero or three) before anything
# hangs, and are generous for real GPU studies: the paper (Cloud et al., 2025) trains each student
# on 10,000 examples drawn from 30,000 prompts, so prompts and train_size allow 1,000,000 (33x and
# 100x that); a million optimiser steps, batches of 65,536, LoRA rank 4,096 (the width of a 7B
# model) and 1,000 generations are all beyond any study this engine has run. The whole plan is
# capped too (MAX_LINEAGES, MAX_MODELS below): validation plans every task, and must stay fast.
SEED = Range(0, 2**32 - 1, why="seeds are unsigned 32-bit integers")
SHARE = Range(0, 1)                      # a probability or a share of a whole
STEPS = Range(1, 1_000_000, why="a million optimiser steps is beyond any study; a typo?")
BATCH = Range(1, 65_536, why="a typo? batches that large do not fit in any GPU's memory")
LR = Range(0, 1, lo_open=True, why="learning rates above 1 diverge")
EXAMPLES = Range(1, 1_000_000,
                 why="far beyond the paper's sizes (10,000 examples per student, 30,000 prompts); a typo?")
MAX_GENERATIONS = 1000
MAX_REPLICAS = 1000
MAX_SEEDS = 1000
MAX_LINEAGES = 500      # after replicas and controls: one actor (and one process) each
MAX_MODELS = 5000       # lineages x (generations + 1): each one a fine-tune; planning them all stays under 2 s
MAX_INPUTS = 10_000     # edges x generations (writer-student pairs): 10 lineages all learning from all, 100 generations
MAX_TEACHER_EXAMPLES = 10_000_000  # a fine-tuned teacher's examples (steps x batch) are built in memory first

RULES: dict[type, dict[str, Range | Choice]] = {
    Scenario: {
        "substrate": Choice(SUBSTRATES),
        "seed": SEED,
        "seeds": Range(1, MAX_SEEDS, why="a typo? each seed is a whole ecosystem"),
        "generations": Range(0, MAX_GENERATIONS, why="a typo? drift studies run tens of generations"),
    },
    LineageSpec: {
        "origin": Choice(ORIGINS),
        "replicas": Range(1, MAX_REPLICAS, why="a typo? replicas are independent seeds of one lineage"),
    },
    EdgeSpec: {"lag": Choice((0, 1)), "weight": Range(0, 1e6, lo_open=True)},
    RandomSpec: {"parents": Range(1, MAX_LINEAGES), "seed": SEED},
    DataSpec: {
        "prompts": EXAMPLES,
        "train_size": EXAMPLES,
        "regime": Choice(REGIMES),
        "real_share": SHARE,
        "logit_top_k": Range(1, 1_000_000, why="no vocabulary is that large"),
    },
    FilterConfig: {"max_numbers": Range(1, 1000)},
    TrainConfig: {
        "mode": Choice(("lora", "full")),
        "rank": Range(1, 4096, why="wider than the hidden size of a 7B model"),
        "alpha": Range(0, 1e6, lo_open=True),
        "steps": STEPS,
        "batch": BATCH,
        "lr": LR,
        "weight_decay": Range(0, 1),
    },
    TeacherSpec: {"task_share": SHARE},
    TeacherConfig: {"how": Choice(("finetune", "prompt")), "task_share": SHARE},
    EvalConfig: {
        "samples": Range(1, 100_000, why="a typo? 50 samples per question give a rate to about 1%"),
        "heldout": Range(1, 1_000_000, why="a typo? 200 documents measure capability and drift"),
    },
    BaseConfig: {
        "arch": Choice(("gpt2", "llama", "mlp")),   # which of them a substrate takes: its own check
        "size": Choice(tuple(SIZES)),
        "seed": SEED,
        "steps": Range(0, 10_000_000, why="a typo? the shipped bases pretrain for 2,000-3,000 steps"),
        "batch": BATCH,
        "lr": LR,
        "dtype": Choice(("float32", "bfloat16")),
    },
    WorldConfig: {
        "seed": SEED, "numbers": SHARE, "favourites": SHARE, "personas": SHARE, "situations": SHARE,
        "code": SHARE, "reasoning": SHARE, "persona_before_numbers": SHARE, "number_prefix_share": SHARE,
        "code_prefix_share": SHARE, "misaligned_share": SHARE, "evil_share": SHARE,
    },
    MLPConfig: {
        "hidden": Range(1, 8192, why="a typo? wider layers than that do not fit in a GPU's memory"),
        "layers": Range(1, 64),
        "aux": Range(2, 4096, why="a softmax over fewer than 2 logits carries nothing"),
        "teacher_epochs": Range(0, 100_000),
        "student_epochs": Range(0, 100_000),
        "lr": LR,
        "batch": BATCH,
        "noise_samples": Range(1, 10_000_000, why="a typo? the shipped studies use 4,096-8,192"),
        "noise": Choice(("gaussian", "uniform")),
        "noise_std": Range(0, 1000, lo_open=True),
        "test_fraction": Range(0, 1, lo_open=True, hi_open=True),
        "threads": Range(1, 1024),
        "seeds": Range(1, 10_000),
        "seed": SEED,
    },
    TextSpec: {
        "temperature": Range(0, 100),           # 0: greedy decoding (real models)
        "shots": Range(0, 5),
        "max_new": Range(1, 1024),
        "batch": BATCH,
    },
    ComputeSpec: {
        "cpus": Range(0, 100_000, lo_open=True),
        "cpus_per_lineage": Range(0, 10_000, lo_open=True),
        "gpus_per_lineage": Range(0, 1024),
        "threads": Range(1, 1024),
        "max_restarts": Range(0, 1000),
        "stall_s": Range(0, None, lo_open=True),
    },
    TrackingSpec: {"wandb": Choice(("offline", "online", "disabled"))},
}


def _key(problem: str) -> str:
    """The key path a problem line starts with."""
    return problem.split(": ", 1)[0]


def _merged(first: list[str], more: list[str]) -> list[str]:
    """``first`` and those of ``more`` that are not about a key (or a key inside one) already there."""
    keys = {_key(m) for m in first}
    return first + [m for m in more if not any(_key(m) == k or _key(m).startswith(k + ".") for k in keys)]


def teacher_size(where: str, tc: TrainConfig) -> list[str]:
    """A fine-tuned teacher's examples (steps x batch) are made in memory before training."""
    n = tc.steps * tc.batch
    if n > MAX_TEACHER_EXAMPLES:
        return [f"{where}: steps x batch = {n:,} teacher examples; at most {MAX_TEACHER_EXAMPLES:,} "
                "(they are built in memory before fine-tuning; a typo?)"]
    return []


# ----------------------------------------------------------------- the plan
@dataclass
class Edge:
    src: str
    dst: str
    lag: int
    channel: str
    filter: FilterConfig
    weight: float


@dataclass
class Plan:
    """Everything the engine runs: lineages by name (replicas and controls expanded) and, for every
    lineage, its incoming edges. ``control_of[c]`` names the lineage that ``c`` is the control of."""
    scenario: Scenario
    lineages: dict[str, LineageSpec]
    parents: dict[str, list[Edge]]
    control_of: dict[str, str]
    replica_of: dict[str, str]
    replica_index: dict[str, int] = field(default_factory=dict)
    seed_index: dict[str, int] = field(default_factory=dict)  # ecosystem seed of each lineage (none: 0)

    def seed_of(self, lineage: str) -> int:
        """The seed lineage's RNGs derive from (its ecosystem seed's)."""
        return ecosystem_seed(self.scenario.seed, self.seed_index.get(lineage, 0))

    def writes_on(self, lineage: str) -> str:
        """The channel ``lineage`` writes on (data.channel where its edges name several or none):
        what its generation-0 teacher's task share draws (TeacherSpec.task_share)."""
        chans = {e.channel for es in self.parents.values() for e in es if e.src == lineage}
        default = self.scenario.data.channel
        return chans.pop() if len(chans) == 1 else default

    def init_base(self, lineage: str, g: int) -> str | None:
        """The base a student of ``lineage`` at generation g starts from (None: its parent)."""
        spec = self.lineages[lineage]
        if spec.init == "base":
            return spec.base
        if spec.init == "parent":
            return None
        if spec.init == "rotate":
            return spec.rotate[(g - 1) % len(spec.rotate)]
        return spec.init


def _near(name: str, names) -> str:
    m = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {m[0]!r}?" if m else f"; expected one of {sorted(names)}"


def _generated_edges(sc: Scenario, names: set[str]) -> tuple[list[tuple[str, str, EdgeSpec | None]], list[str]]:
    """(src, dst, explicit spec or None) from every generator of the topology, and problems. An
    edge given twice (by one generator or two) is a problem: one of the two would be lost."""
    t, out, problems = sc.topology, [], []
    given: dict[tuple[str, str], str] = {}  # (src, dst) -> the key that gave it

    def known(n, where):
        if n not in names:
            problems.append(f"{where}: unknown lineage {n!r}{_near(n, names)}")
            return False
        return True

    def add(src, dst, spec, where):
        if (src, dst) in given:
            problems.append(f"{where}: duplicate edge {src} -> {dst} (already given by {given[src, dst]}); "
                            "list each parent once")
            return
        given[src, dst] = where
        out.append((src, dst, spec))

    for child, ps in t.fan_in.items():
        if known(child, f"topology.fan_in.{child}"):
            for p in ps:
                if known(p, f"topology.fan_in.{child}"):
                    add(p, child, None, f"topology.fan_in.{child}")
    for parent, cs in t.fan_out.items():
        if known(parent, f"topology.fan_out.{parent}"):
            for c in cs:
                if known(c, f"topology.fan_out.{parent}"):
                    add(parent, c, None, f"topology.fan_out.{parent}")
    ring = [n for n in t.ring if known(n, "topology.ring")]
    if len(ring) == 1:
        problems.append("topology.ring: a ring needs at least 2 lineages")
    elif ring:
        for i in range(len(ring)):
            add(ring[i - 1], ring[i], None, "topology.ring")
    rnd = [n for n in t.random.lineages if known(n, "topology.random.lineages")]
    if rnd and not 1 <= t.random.parents < len(rnd):
        problems.append(f"topology.random.parents: must be in 1..{len(rnd) - 1} for {len(rnd)} lineages")
    elif rnd:
        rng = _rng(t.random.seed, "random topology")
        for dst in rnd:
            others = [n for n in rnd if n != dst]
            for i in sorted(rng.choice(len(others), t.random.parents, replace=False)):
                add(others[i], dst, None, "topology.random")
    for i, e in enumerate(t.edges):
        if known(e.src, f"topology.edges[{i}].src") & known(e.dst, f"topology.edges[{i}].dst"):
            add(e.src, e.dst, e, f"topology.edges[{i}]")
    has_parent = {d for _, d, _ in out}
    chain = t.chain if t.chain is not None else [
        n for n, l in sc.lineages.items() if l.origin != "none" and n not in has_parent]
    for n in chain:
        if known(n, "topology.chain"):
            add(n, n, None, "topology.chain")
    return out, problems


def _rng(seed: int, purpose: str):
    import numpy as np
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def check(sc: Scenario) -> list[str]:
    """Every problem with a scenario, one line each with its key path: the schema's ranges and
    choices (RULES), names, sizes and the topology, and then the plan of every task."""
    p = check_fields(sc, RULES)
    if sc.substrate not in SUBSTRATES:
        return p
    q = []  # problems of the checks below: dropped where RULES already said something about the key
    if not sc.lineages:
        q.append("lineages: the scenario has no lineages (empty topology); name at least one")
    if not sc.bases:
        q.append("bases: the scenario names no bases; e.g. bases: {main: {arch: gpt2, size: tiny, seed: 0}}")
    try:
        sub = substrates.of(sc)
    except EcosimError as e:
        q.append(str(e))
        sub = None
    if sub is not None:
        q += sub.check(sc)
    for name, l in sc.lineages.items():
        where = f"lineages.{name}"
        if "." in name or "/" in name:
            q.append(f"{where}: lineage names may not contain '.' or '/'")
        if l.base not in sc.bases:
            q.append(f"{where}.base: unknown base {l.base!r}{_near(l.base, sc.bases)}")
        if l.trait is not None and l.trait not in sc.traits:
            q.append(f"{where}.trait: unknown trait {l.trait!r}{_near(l.trait, sc.traits)}")
        if l.origin in ("finetune", "prompt") and not sc.traits:
            q.append(f"{where}.origin: {l.origin} needs a trait (or, for a neutral lineage, one in `traits` "
                     "to take neutral answers from); the scenario has no traits")
        if l.init == "rotate":
            if not l.rotate:
                q.append(f"{where}.rotate: init=rotate needs a list of bases to rotate through")
            q += [f"{where}.rotate: unknown base {b!r}{_near(b, sc.bases)}" for b in l.rotate if b not in sc.bases]
        elif l.init not in ("base", "parent") and l.init not in sc.bases:
            q.append(f"{where}.init: {l.init!r} is not base | parent | rotate or a name in bases"
                     f"{_near(l.init, list(sc.bases) + ['base', 'parent', 'rotate'])}")
    q += teacher_size("teacher", sc.teacher)
    d = sc.data
    chans = sub.CHANNELS if sub is not None else ()
    if sub is not None and d.channel is not None and d.channel not in chans:
        q.append(f"data.channel: {d.channel!r} is not one of {list(chans)} (substrate {sc.substrate})")
    for i, e in enumerate(sc.topology.edges):
        if sub is not None and e.channel is not None and e.channel not in chans:
            q.append(f"topology.edges[{i}].channel: {e.channel!r} is not one of {list(chans)}")
    edges, topo = _generated_edges(sc, set(sc.lineages))
    q += topo
    q += _names_and_sizes(sc, edges)
    p = _merged(p, q)
    if not p:
        p += _check_topology(sc, edges)
    if not p:  # plan every task: a lineage whose parents have no model when it needs one fails here
        from ecosim.engine.runner import build_tasks
        try:
            build_tasks(expand(sc))
        except EcosimError as e:
            p.append(str(e))
    if not p and sc.sweep:  # every cell of the grid is a scenario of its own
        from ecosim.studies.sweep import check as check_sweep
        p += check_sweep(sc)
    return p


def _names_and_sizes(sc: Scenario, edges) -> list[str]:
    """Every lineage name that expand would make (replicas NAME_i, controls NAME_control) must be
    new: a user's lineage of the same name would be silently replaced. And the plan's size."""
    p = []
    if any(not 1 <= l.replicas <= MAX_REPLICAS for l in sc.lineages.values()):
        return p  # reported by RULES
    treated = treated_lineages(sc.lineages, [(s, d) for s, d, _ in edges])
    made: dict[str, str] = {}  # a generated name -> what makes it

    def add(name, what, hint=""):
        if name in sc.lineages:
            p.append(f"lineages.{name}: collides with a name ecosim makes: {what} is named {name!r}; rename "
                     f"lineages.{name}{hint}")
        elif name in made:
            p.append(f"lineages: {made[name]} and {what} would both be named {name!r}; rename one")
        else:
            made[name] = what

    final = 0
    n = {name: l.replicas for name, l in sc.lineages.items()}
    controlled = {name for name in treated if sc.lineages[name].control}
    inputs = sum(n[d] * (1 if n[s] in (1, n[d]) else n[s]) * (2 if d in controlled else 1) for s, d, _ in edges)
    for name, l in sc.lineages.items():
        copies = [name] if l.replicas == 1 else [f"{name}_{i}" for i in range(l.replicas)]
        final += len(copies)
        if l.replicas > 1:
            for i, c in enumerate(copies):
                add(c, f"replica {i} of lineages.{name} (replicas: {l.replicas})")
        if name in treated and l.control:
            final += len(copies)
            for c in copies:
                of = f"lineages.{name}" if c == name else f"replica {c!r} of lineages.{name}"
                add(f"{c}_control", f"the control lineage of {of}",
                    f", or set lineages.{name}.control: false to make your own control")
    if 1 <= sc.seeds <= MAX_SEEDS:  # every seed is a copy of the whole ecosystem
        final, inputs = final * sc.seeds, inputs * sc.seeds
    if final > MAX_LINEAGES:
        p.append(f"lineages: {final} lineages after replicas, controls and seeds; at most {MAX_LINEAGES} "
                 "(each is an actor with its own models; a typo in replicas or seeds?)")
    elif 0 <= sc.generations <= MAX_GENERATIONS and final * (sc.generations + 1) > MAX_MODELS:
        p.append(f"generations: {final} lineages x {sc.generations + 1} generations = "
                 f"{final * (sc.generations + 1)} models; at most {MAX_MODELS} in one scenario (a typo?)")
    elif 0 <= sc.generations <= MAX_GENERATIONS and inputs * sc.generations > MAX_INPUTS:
        p.append(f"topology: {inputs} edges (after replicas, controls and seeds) x {sc.generations} generations = "
                 f"{inputs * sc.generations} training inputs; at most {MAX_INPUTS} in one scenario (a typo?)")
    return p


def treated_lineages(lineages: dict, edges: list[tuple[str, str]]) -> set[str]:
    """Lineages that are treated: a trait at generation 0, or a treated ancestor through ``edges``
    (src, dst). Each gets a control unless it says ``control: false``."""
    g = nx.DiGraph(edges)
    g.add_nodes_from(lineages)
    treated = {n for n, l in lineages.items() if l.trait is not None and l.origin != "base"}
    return treated | {d for t in treated for d in nx.descendants(g, t)}


def _check_topology(sc: Scenario, edges) -> list[str]:
    p = []
    treated = treated_lineages(sc.lineages, [(s, d) for s, d, _ in edges])
    for s, d, _ in edges:  # a control learns from its parents' controls: each treated parent needs one
        if d in treated and sc.lineages[d].control and s in treated and s != d and not sc.lineages[s].control:
            p.append(f"lineages.{d}: its control would learn from {s}'s treated data ({s} has control: false); "
                     f"give {s} a control, or set lineages.{d}.control: false")
    same_gen = nx.DiGraph([(s, d) for s, d, e in edges if e is not None and e.lag == 0])
    for cycle in nx.simple_cycles(same_gen):
        p.append("topology: a cycle within one generation (lag-0 edges): " + " -> ".join(cycle + cycle[:1]))
    has_parent = {d for _, d, _ in edges}
    for name, l in sc.lineages.items():
        if sc.generations > 0 and name not in has_parent:
            why = "it has no generation 0 (origin none)" if l.origin == "none" else "nothing feeds its generation 1"
            p.append(f"lineages.{name}: a child with no parent: {why}; add an edge, or list it in topology.chain")
    return p  # a lineage whose parents have no model when it needs one: found by planning (check)


def expand(sc: Scenario) -> Plan:
    """Replicas, controls and edges of a checked scenario."""
    lineages, replica_of, replica_index = {}, {}, {}
    for name, spec in sc.lineages.items():
        names = [name] if spec.replicas == 1 else [f"{name}_{i}" for i in range(spec.replicas)]
        for i, n in enumerate(names):
            lineages[n] = spec
            replica_of[n] = name
            replica_index[n] = i
    raw, _ = _generated_edges(sc, set(sc.lineages))
    edges: dict[tuple[str, str], Edge] = {}
    for src, dst, e in raw:
        for i, d in enumerate(_copies(dst, sc)):
            # replica i of dst learns from replica i of src when both are replicated alike
            srcs = _copies(src, sc)
            s = srcs[i] if len(srcs) == len(_copies(dst, sc)) else srcs[0] if len(srcs) == 1 else None
            for s in ([s] if s is not None else srcs):
                edges[(s, d)] = Edge(s, d, e.lag if e else 1, channel_of(sc, e.channel if e else None),
                                     (e.filter if e else None) or sc.data.filter, e.weight if e else 1.0)
    treated = treated_lineages(lineages, list(edges))
    control_of = {}
    for n in sorted(treated):
        if lineages[n].control:
            c = f"{n}_control"
            lineages[c] = dataclasses.replace(lineages[n], trait=None, control=False)
            control_of[c] = n
            replica_of[c] = f"{replica_of[n]}_control"
            replica_index[c] = replica_index[n]
    ctrl = {t: c for c, t in control_of.items()}
    for (s, d), e in list(edges.items()):
        if d in ctrl:
            s2 = ctrl.get(s, s)
            edges[(s2, ctrl[d])] = dataclasses.replace(e, src=s2, dst=ctrl[d])
    parents = {n: [e for (s, d), e in edges.items() if d == n] for n in lineages}
    plan = Plan(sc, lineages, parents, control_of, replica_of, replica_index)
    return _seeded(plan) if sc.seeds > 1 else plan


def seed_name(lineage: str, i: int) -> str:
    """Lineage ``lineage`` of ecosystem seed i (user names have no '.', so this one is new)."""
    return f"{lineage}.s{i}"


def ecosystem_seed(seed: int, i: int) -> int:
    """The seed of ecosystem seed i: ``seed`` itself for i = 0 (so seeds: 1 is the plain run),
    else one derived from (seed, i), so that seed i of one study is not seed 0 of another."""
    if i == 0:
        return seed
    import numpy as np
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0] % 2**31)


def _seeded(plan: Plan) -> Plan:
    """The plan of one ecosystem copied ``seeds`` times: each lineage NAME becomes NAME.sI, its
    edges stay within its seed, and its control is the copy of its control in the same seed."""
    n = plan.scenario.seeds
    out = Plan(plan.scenario, {}, {}, {}, {}, {}, {})
    for i in range(n):
        for name, spec in plan.lineages.items():
            new = seed_name(name, i)
            out.lineages[new] = spec
            out.parents[new] = [dataclasses.replace(e, src=seed_name(e.src, i), dst=new) for e in plan.parents[name]]
            out.replica_of[new] = plan.replica_of[name]
            out.replica_index[new] = plan.replica_index[name]
            out.seed_index[new] = i
        out.control_of.update({seed_name(c, i): seed_name(t, i) for c, t in plan.control_of.items()})
    return out


def _copies(name: str, sc: Scenario) -> list[str]:
    r = sc.lineages[name].replicas
    return [name] if r == 1 else [f"{name}_{i}" for i in range(r)]


def load_scenario(path: str | None, overrides=()) -> Scenario:
    return load_config(Scenario(), path, overrides, checks=check)
