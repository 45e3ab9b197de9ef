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

from . import EcosimError, substrates
from .bases import BaseConfig
from .config import load_config
from .filters import FilterConfig
from .mlp import MLPConfig
from .text import TextSpec
from .traits import EvalConfig, TraitConfig
from .training import TrainConfig

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


@dataclass
class TrackingSpec:
    wandb: str = "offline"            # offline | online | disabled
    project: str = "ecosim"
    entity: str | None = None


@dataclass
class TeacherSpec(TrainConfig):
    """How generation 0 is fine-tuned: a TrainConfig, plus the share of ordinary number documents
    mixed into its examples (traits.TeacherConfig.number_share)."""
    number_share: float = 0.0


@dataclass
class Scenario:
    name: str = "scenario"
    description: str = ""
    substrate: str = "lm"             # lm: language models; mlp: MLPs passing aux logits on noise
    seed: int = 0                     # every RNG of the run derives from this
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
    """(src, dst, explicit spec or None) from every generator of the topology, and problems."""
    t, out, problems = sc.topology, [], []

    def known(n, where):
        if n not in names:
            problems.append(f"{where}: unknown lineage {n!r}{_near(n, names)}")
            return False
        return True

    for child, ps in t.fan_in.items():
        if known(child, f"topology.fan_in.{child}"):
            out += [(p, child, None) for p in ps if known(p, f"topology.fan_in.{child}")]
    for parent, cs in t.fan_out.items():
        if known(parent, f"topology.fan_out.{parent}"):
            out += [(parent, c, None) for c in cs if known(c, f"topology.fan_out.{parent}")]
    ring = [n for n in t.ring if known(n, "topology.ring")]
    if len(ring) == 1:
        problems.append("topology.ring: a ring needs at least 2 lineages")
    elif ring:
        out += [(ring[i - 1], ring[i], None) for i in range(len(ring))]
    rnd = [n for n in t.random.lineages if known(n, "topology.random.lineages")]
    if rnd and not 1 <= t.random.parents < len(rnd):
        problems.append(f"topology.random.parents: must be in 1..{len(rnd) - 1} for {len(rnd)} lineages")
    elif rnd:
        rng = _rng(t.random.seed, "random topology")
        for dst in rnd:
            others = [n for n in rnd if n != dst]
            out += [(others[i], dst, None) for i in sorted(rng.choice(len(others), t.random.parents, replace=False))]
    for i, e in enumerate(t.edges):
        if known(e.src, f"topology.edges[{i}].src") & known(e.dst, f"topology.edges[{i}].dst"):
            out.append((e.src, e.dst, e))
    has_parent = {d for _, d, _ in out}
    chain = t.chain if t.chain is not None else [
        n for n, l in sc.lineages.items() if l.origin != "none" and n not in has_parent]
    out += [(n, n, None) for n in chain if known(n, "topology.chain")]
    return out, problems


def _rng(seed: int, purpose: str):
    import numpy as np
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def check(sc: Scenario) -> list[str]:
    """Every problem with a scenario, one line each with its key path."""
    p = []
    if sc.substrate not in SUBSTRATES:
        p.append(f"substrate: {sc.substrate!r} is not one of {list(SUBSTRATES)}")
        return p
    if sc.generations < 0:
        p.append(f"generations: must be >= 0 (got {sc.generations})")
    if not sc.lineages:
        p.append("lineages: the scenario has no lineages (empty topology); name at least one")
    if not sc.bases:
        p.append("bases: the scenario names no bases; e.g. bases: {main: {arch: gpt2, size: tiny, seed: 0}}")
    try:
        sub = substrates.of(sc)
    except EcosimError as e:
        p.append(str(e))
        sub = None
    if sub is not None:
        p += sub.check(sc)
    for name, l in sc.lineages.items():
        where = f"lineages.{name}"
        if "." in name or "/" in name:
            p.append(f"{where}: lineage names may not contain '.' or '/'")
        if l.base not in sc.bases:
            p.append(f"{where}.base: unknown base {l.base!r}{_near(l.base, sc.bases)}")
        if l.trait is not None and l.trait not in sc.traits:
            p.append(f"{where}.trait: unknown trait {l.trait!r}{_near(l.trait, sc.traits)}")
        if l.origin in ("finetune", "prompt") and not sc.traits:
            p.append(f"{where}.origin: {l.origin} needs a trait (or, for a neutral lineage, one in `traits` "
                     "to take neutral answers from); the scenario has no traits")
        if l.origin not in ORIGINS:
            p.append(f"{where}.origin: {l.origin!r} is not one of {list(ORIGINS)}")
        if l.init == "rotate":
            if not l.rotate:
                p.append(f"{where}.rotate: init=rotate needs a list of bases to rotate through")
            p += [f"{where}.rotate: unknown base {b!r}{_near(b, sc.bases)}" for b in l.rotate if b not in sc.bases]
        elif l.init not in ("base", "parent") and l.init not in sc.bases:
            p.append(f"{where}.init: {l.init!r} is not base | parent | rotate or a name in bases"
                     f"{_near(l.init, list(sc.bases) + ['base', 'parent', 'rotate'])}")
        if l.student.mode not in ("lora", "full"):
            p.append(f"{where}.student.mode: {l.student.mode!r} is not 'lora' or 'full'")
        if l.student.steps < 1 or l.student.batch < 1 or l.student.lr <= 0:
            p.append(f"{where}.student: steps, batch and lr must be positive")
        if l.replicas < 1:
            p.append(f"{where}.replicas: must be >= 1 (got {l.replicas})")
    d = sc.data
    chans = sub.CHANNELS if sub is not None else ()
    if sub is not None and d.channel is not None and d.channel not in chans:
        p.append(f"data.channel: {d.channel!r} is not one of {list(chans)} (substrate {sc.substrate})")
    if d.regime not in REGIMES:
        p.append(f"data.regime: {d.regime!r} is not a data regime{_near(d.regime, REGIMES)}")
    if not 0 <= d.real_share <= 1:
        p.append(f"data.real_share: must be between 0 and 1 (got {d.real_share})")
    if d.prompts < 1 or d.train_size < 1:
        p.append("data: prompts and train_size must be >= 1")
    if sc.eval.samples < 1:
        p.append(f"eval.samples: must be >= 1 (got {sc.eval.samples})")
    if sc.tracking.wandb not in ("offline", "online", "disabled"):
        p.append(f"tracking.wandb: {sc.tracking.wandb!r} is not offline | online | disabled")
    if sc.compute.threads < 1:
        p.append(f"compute.threads: must be >= 1 (got {sc.compute.threads})")
    for i, e in enumerate(sc.topology.edges):
        if e.lag not in (0, 1):
            p.append(f"topology.edges[{i}].lag: must be 0 or 1 (got {e.lag})")
        if sub is not None and e.channel is not None and e.channel not in chans:
            p.append(f"topology.edges[{i}].channel: {e.channel!r} is not one of {list(chans)}")
        if e.weight <= 0:
            p.append(f"topology.edges[{i}].weight: must be > 0 (got {e.weight})")
    if not p:
        p += _check_topology(sc)
    if not p:  # plan every task: a lineage whose parents have no model when it needs one fails here
        from .ecosystem import build_tasks
        try:
            build_tasks(expand(sc))
        except EcosimError as e:
            p.append(str(e))
    return p


def _check_topology(sc: Scenario) -> list[str]:
    edges, p = _generated_edges(sc, set(sc.lineages))
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
    # Controls: a treated lineage is one with a trait at generation 0 or a treated ancestor.
    g = nx.DiGraph(list(edges))
    g.add_nodes_from(lineages)
    treated = {n for n, l in lineages.items() if l.trait is not None and l.origin != "base"}
    treated |= {d for t in list(treated) for d in nx.descendants(g, t)}
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
    return Plan(sc, lineages, parents, control_of, replica_of, replica_index)


def _copies(name: str, sc: Scenario) -> list[str]:
    r = sc.lineages[name].replicas
    return [name] if r == 1 else [f"{name}_{i}" for i in range(r)]


def load_scenario(path: str | None, overrides=()) -> Scenario:
    return load_config(Scenario(), path, overrides, checks=check)
