"""Scenario YAMLs: the typed schema of an ecosystem study and its validation (every problem at
once, each with its key path). The engine's own sections (lineages, topology, data, seeds,
compute, tracking, sweep) are declared here; the substrates fill its slots (what a base, a trait,
a student's training and a filter are) and add their sections (teacher, eval, text, mlp) through
the registry, so this module imports no substrate. Expansion into a plan: ``engine.plan``."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

import networkx as nx

from ecosim.engine import grid, registry
from ecosim.engine.config import EXAMPLES, SEED, SHARE, Choice, Range, check_fields, load_config
from ecosim.engine.plan import expand, generated_edges, near, treated_lineages
from ecosim.engine.tasks import build_tasks
from ecosim.errors import EcosimError

ORIGINS = ("finetune", "prompt", "base", "none")
REGIMES = ("replace", "accumulate", "accumulate-subsample")


@dataclass
class _LineageSpec:
    """A lineage: one model per generation, each trained on data its parents wrote."""
    base: str = "main"                # name in `bases`: what generation 0 is made from
    trait: str | None = None          # name in `traits`; None: a neutral lineage
    origin: str = "finetune"          # how generation 0 gets its trait: finetune | prompt | base | none
    init: str = "base"                # where students start: base (this lineage's) | parent | rotate | a name in `bases`
    rotate: list[str] = field(default_factory=list)   # init=rotate: generation g starts from rotate[(g-1) % len]
    student: Any = None               # slot `student`: how its students train (default: rank-4 LoRA)
    control: bool = True              # add a matching control lineage (neutral generation 0, same pipeline)
    # >1: lineages name_0, name_1, ... with their own seeds (and, on the mlp substrate, their own
    # initialisations: replica i's bases have seed + i)
    replicas: int = 1


@dataclass
class _EdgeSpec:
    """An edge of the topology: lineage `dst` learns from data lineage `src` writes."""
    src: str = "???"                  # the writing lineage
    dst: str = "???"                  # the learning lineage
    lag: int = 1                      # 1: from src's previous generation; 0: from the same generation
    channel: str | None = None        # None: data.channel
    filter: Any = None                # slot `filter`; None: data.filter
    weight: float = 1.0               # share of dst's training set, relative to its other parents


@dataclass
class RandomSpec:
    """Random parents: each listed lineage learns from others drawn at random."""
    lineages: list[str] = field(default_factory=list)  # each learns from `parents` others drawn at random
    parents: int = 1                  # parents drawn for each
    seed: int = 0                     # the draw's seed


@dataclass
class _TopologySpec:
    """Who learns from whom: each shape below adds edges (`chain` by default)."""
    # Lineages that learn from their own previous generation. None: every lineage that has a
    # generation 0 and no other parent.
    chain: list[str] | None = None
    fan_in: dict[str, list[str]] = field(default_factory=dict)   # child: [parents]
    fan_out: dict[str, list[str]] = field(default_factory=dict)  # parent: [children]
    ring: list[str] = field(default_factory=list)                # each learns from the one before it
    random: RandomSpec = field(default_factory=RandomSpec)       # parents drawn at random
    edges: list[_EdgeSpec] = field(default_factory=list)         # explicit edges, each with its own settings


@dataclass
class _DataSpec:
    """What each model writes for the next generation, and how it is filtered and mixed."""
    channel: str | None = None        # None: numbers (lm) or aux_logits (mlp)
    prompts: int = 10000              # samples each model writes per generation
    train_size: int = 8000            # examples per student (capped by what the filter kept)
    regime: str = "replace"           # replace | accumulate | accumulate-subsample
    real_share: float = 0.0           # share of each training set that is the world's own data
    filter: Any = None                # slot `filter`: what a dataset keeps
    logit_top_k: int | None = 32      # logits channel: soft labels kept per token (null: the full vocabulary)


@dataclass
class ComputeSpec:
    """Where and how the lineages run (Ray actors, CPUs, GPUs)."""
    ray: bool = True                  # False: run every lineage in this process, one after another
    address: str | None = None        # an existing Ray cluster (also RAY_ADDRESS); None: start one here
    cpus: float | None = None         # CPUs of the local Ray instance; None: all of this machine's
    cpus_per_lineage: float | None = None  # None: cpus shared evenly among the lineages
    gpus_per_lineage: float | None = None  # None: 1/lineages when a GPU is present, else 0
    threads: int = 1                  # torch threads per lineage actor
    # GB of memory one lineage actor needs, checked against what Ray has before any actor starts;
    # None: the substrate's measured figure for the lineage's base (lineage_gb; none: no check)
    memory_per_lineage: float | None = None
    # Training batches larger than this many padded tokens (rows x longest row) run as
    # micro-batches whose gradients add up to the batch's: the same update up to float rounding,
    # with a fraction of the activations' memory (a real model's dominant cost). None: one pass.
    micro_batch_tokens: int | None = None
    # Recompute each layer's activations in the backward pass instead of keeping them all: a real
    # model's training memory falls to about one layer's activations, at the cost of a second
    # forward pass; the same update up to float rounding.
    checkpointing: bool = False
    # Real models: the attention a training uses. "model": the model's own (torch's fused sdpa);
    # "eager": plain matmuls, faster to train on a CPU (bench/train_step.py), the same attention up
    # to float rounding (which moves a run's numbers: sampled lists then differ).
    train_attention: str = "model"
    # Training only: each decoder layer through torch.compile (fused kernels, far fewer launches).
    # "on": every training; "lora": LoRA trainings only; "off". A LoRA update of SmolLM2 on a
    # 2-core CPU with eager attention: 4.15 s instead of 5.38 (batch 8; a process compiles once,
    # about a minute); full updates and sdpa attention: within noise there. A GPU's step is bound
    # by launching kernels (3,927 a step, busy 70.5 ms of 112; docs/bench/gpu_h200_step_profile.log):
    # not yet measured there. The same update up to float rounding (which moves numbers a little);
    # writing and measuring (a teacher's checks too) run plainly.
    compile_layers: str = "off"
    max_restarts: int = 3             # a crashed lineage actor restarts this often and reloads
    # A run whose lineages finish no task for this long stops with the nodes in flight named (a
    # lineage waiting for resources that free up never, a stuck worker). Long enough for one
    # real-model training on a GPU; None waits for ever.
    stall_s: float | None = 14400.0


@dataclass
class TrackingSpec:
    """Weights & Biases logging."""
    wandb: str = "offline"            # offline | online | disabled
    project: str = "ecosim"           # W&B project
    entity: str | None = None         # W&B entity (team or user); None: your default


@dataclass
class _Scenario:
    """An ecosystem study: its named bases, traits and lineages, who learns from whom, and how.
    Bases, traits and lineages start empty: a YAML's entries replace nothing."""
    name: str = "scenario"            # names the run directory: out_dir/NAME-TIMESTAMP
    description: str = ""             # one line, shown by `ecosim list`
    substrate: str = "lm"             # a family of the registered substrates: lm (world or real models) | mlp
    seed: int = 0                     # every RNG of the run derives from this
    # >1: the whole ecosystem N times, seed i's RNGs derived from (seed, i) (seed 0: `seed` itself);
    # its lineages are named NAME.sI, each paired with its control within its seed. Bases are
    # shared by all seeds (except where the substrate gives replicas their own, as the MLP one does).
    seeds: int = 1
    # True: ecosystem seed i pretrains its own bases, each base's seed + 1000 i (seed 0 keeps the
    # configured ones), so that a shared-vs-mismatched-base contrast is replicated over pairs of
    # bases, not measured on one pair. World bases (the MLP substrate does this always; a real
    # model has one set of weights).
    bases_per_seed: bool = False
    generations: int = 3              # generations after generation 0
    bases: dict[str, Any] = field(default_factory=dict)       # slot `base`: the models lineages start from
    traits: dict[str, Any] = field(default_factory=dict)      # slot `trait`: what a teacher can carry
    lineages: dict[str, _LineageSpec] = field(default_factory=dict)  # one model per generation each
    topology: _TopologySpec = field(default_factory=_TopologySpec)  # who learns from whom
    data: _DataSpec = field(default_factory=_DataSpec)        # what models write for each other
    compute: ComputeSpec = field(default_factory=ComputeSpec)  # where the lineages run
    tracking: TrackingSpec = field(default_factory=TrackingSpec)  # W&B logging
    out_dir: str = "runs"             # where run directories go
    report: bool = True               # write RUN_DIR/report/index.html at the end (ecosim report)
    # A grid of runs: {key path: [values]}, e.g. {data.real_share: [0, 0.5]}; every cell (one value
    # per key) x seed is a run, and one report compares them (ecosim.sweep). Empty: one run.
    sweep: dict[str, list] = field(default_factory=dict)


# ----------------------------------------------------------------- the schema's rules
# Every numeric range and every fixed choice of a scenario, in one table: {dataclass: {field:
# rule}} (a subclass has its bases' rules; a list field's rule applies to each element; None, an
# unset optional, passes). config.check_fields applies it and reports `key.path: must be ...`.
# The engine's entries are here; each substrate declares its own (``rules()`` merges them).
# Choices that depend on the substrate or on other entries (a trait's kind and target, a base's
# arch per substrate, channels, base and lineage names) are checked in `check` and the substrates.
# The whole plan is capped (MAX_LINEAGES, MAX_MODELS below): validation plans every task, and
# must stay fast.
MAX_GENERATIONS = 1000

MAX_REPLICAS = 1000

MAX_SEEDS = 1000

MAX_LINEAGES = 500      # after replicas and controls: one actor (and one process) each

MAX_MODELS = 5000       # lineages x (generations + 1): each one a fine-tune; planning them all stays under 2 s

MAX_INPUTS = 10_000     # edges x generations (writer-student pairs): 10 lineages all learning from all, 100 generations

ENGINE_RULES: dict[type, dict[str, Range | Choice]] = {
    _Scenario: {
        "seed": SEED,
        "seeds": Range(1, MAX_SEEDS, why="a typo? each seed is a whole ecosystem"),
        "generations": Range(0, MAX_GENERATIONS, why="a typo? drift studies run tens of generations"),
    },
    _LineageSpec: {
        "origin": Choice(ORIGINS),
        "replicas": Range(1, MAX_REPLICAS, why="a typo? replicas are independent seeds of one lineage"),
    },
    _EdgeSpec: {"lag": Choice((0, 1)), "weight": Range(0, 1e6, lo_open=True)},
    RandomSpec: {"parents": Range(1, MAX_LINEAGES), "seed": SEED},
    _DataSpec: {
        "prompts": EXAMPLES,
        "train_size": EXAMPLES,
        "regime": Choice(REGIMES),
        "real_share": SHARE,
        "logit_top_k": Range(1, 1_000_000, why="no vocabulary is that large"),
    },
    ComputeSpec: {
        "cpus": Range(0, 100_000, lo_open=True),
        "cpus_per_lineage": Range(0, 10_000, lo_open=True),
        "gpus_per_lineage": Range(0, 1024),
        "threads": Range(1, 1024),
        "memory_per_lineage": Range(0, 1_000_000, lo_open=True),
        "micro_batch_tokens": Range(1, 100_000_000),
        "train_attention": Choice(("model", "eager")),
        "compile_layers": Choice(("off", "lora", "on")),
        "max_restarts": Range(0, 1000),
        "stall_s": Range(0, None, lo_open=True),
    },
    TrackingSpec: {"wandb": Choice(("offline", "online", "disabled"))},
}


def _key(problem: str) -> str:
    """The key path a problem line starts with."""
    return problem.split(": ", 1)[0]


def merged(first: list[str], more: list[str]) -> list[str]:
    """``first`` and those of ``more`` that are not about a key (or a key inside one) already there."""
    keys = {_key(m) for m in first}
    return first + [m for m in more if not any(_key(m) == k or _key(m).startswith(k + ".") for k in keys)]

# ----------------------------------------------------------------- the composed schema
# The classes above leave the substrates' slots open (typed Any). The schema a YAML is loaded
# into is composed once from them and what the substrates registered: each slot typed by its
# dataclass, each substrate section added as a field. The composed classes keep the names users
# know (Scenario, LineageSpec, EdgeSpec, TopologySpec, DataSpec) and live in this module
# (``schema.Scenario``, resolved by ``__getattr__``), so they pickle by name to Ray workers.
_composed: dict[str, type] = {}


def _make(name: str, base: type, new: list[tuple]) -> type:
    cls = dataclasses.make_dataclass(name, new, bases=(base,))
    cls.__module__, cls.__qualname__, cls.__doc__ = __name__, name, base.__doc__
    return cls


def types() -> dict[str, type]:
    """The composed schema classes by name."""
    if _composed:
        return _composed
    slots, sections = registry.slots(), registry.sections()
    missing = sorted({"base", "trait", "student", "filter"} - set(slots))
    if missing:
        raise EcosimError(f"the registered substrates fill no schema slot {missing}")
    (base, _), (trait, _) = slots["base"], slots["trait"]
    (student, new_student), (filt, new_filter) = slots["student"], slots["filter"]
    edge = _make("EdgeSpec", _EdgeSpec, [("filter", Optional[filt], field(default=None))])
    topology = _make("TopologySpec", _TopologySpec, [("edges", list[edge], field(default_factory=list))])
    data = _make("DataSpec", _DataSpec, [("filter", filt, field(default_factory=new_filter))])
    lineage = _make("LineageSpec", _LineageSpec, [("student", student, field(default_factory=new_student))])
    scenario = _make("Scenario", _Scenario, [
        ("bases", dict[str, base], field(default_factory=dict)),
        ("traits", dict[str, trait], field(default_factory=dict)),
        ("lineages", dict[str, lineage], field(default_factory=dict)),
        ("topology", topology, field(default_factory=topology)),
        ("data", data, field(default_factory=data)),
    ] + [(name, cls, field(default_factory=new)) for name, (cls, new) in sections.items()])
    _composed.update(EdgeSpec=edge, TopologySpec=topology, DataSpec=data, LineageSpec=lineage, Scenario=scenario)
    return _composed


def __getattr__(name: str):
    if name in ("Scenario", "LineageSpec", "EdgeSpec", "TopologySpec", "DataSpec"):
        return types()[name]
    if name == "RULES":
        return rules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rule(cls: type, name: str):
    """The rule of field ``name`` of dataclass ``cls`` (or of a class it derives from)."""
    table = rules()
    return next(table[c][name] for c in cls.__mro__ if name in table.get(c, {}))


def rules() -> dict[type, dict[str, Range | Choice]]:
    """The one rules table: {dataclass: {field: rule}}, the engine's entries and every substrate's
    (``config.check_fields`` applies it; ``ecosim schema`` documents it)."""
    out = {cls: dict(r) for cls, r in ENGINE_RULES.items()}
    out[_Scenario]["substrate"] = Choice(registry.families())
    for cls, r in registry.rules().items():
        out.setdefault(cls, {}).update(r)
    return out


def check(sc) -> list[str]:
    """Every problem with a scenario, one line each with its key path: the schema's ranges and
    choices (RULES), names, sizes and the topology, and then the plan of every task."""
    p = check_fields(sc, rules())
    if sc.substrate not in registry.families():
        return p
    q = []  # problems of the checks below: dropped where RULES already said something about the key
    if not sc.lineages:
        q.append("lineages: the scenario has no lineages (empty topology); name at least one")
    if not sc.bases:
        q.append("bases: the scenario names no bases; e.g. bases: {main: {arch: gpt2, size: tiny, seed: 0}}")
    try:
        sub = registry.of(sc)
    except EcosimError as e:
        q.append(str(e))
        sub = None
    if sub is not None:
        q += sub.check(sc)
        if sc.teacher.target_logodds is not None and not sub.TARGET_TEACHERS:
            q.append("teacher.target_logodds: a teacher trained to a target strength is for real models "
                     f"(substrate {sc.substrate} trains teachers for teacher.steps)")
        if sc.teacher.answers != "word" and not sub.TARGET_TEACHERS:  # the same substrates: real models
            q.append(f"teacher.answers: {sc.teacher.answers} is for real models' preference teachers "
                     f"(substrate {sc.substrate} teaches its own answers; leave it at word)")
    for name, l in sc.lineages.items():
        where = f"lineages.{name}"
        if "." in name or "/" in name:
            q.append(f"{where}: lineage names may not contain '.' or '/'")
        if l.base not in sc.bases:
            q.append(f"{where}.base: unknown base {l.base!r}{near(l.base, sc.bases)}")
        if l.trait is not None and l.trait not in sc.traits:
            q.append(f"{where}.trait: unknown trait {l.trait!r}{near(l.trait, sc.traits)}")
        if l.origin in ("finetune", "prompt") and not sc.traits:
            q.append(f"{where}.origin: {l.origin} needs a trait (or, for a neutral lineage, one in `traits` "
                     "to take neutral answers from); the scenario has no traits")
        if l.init == "rotate":
            if not l.rotate:
                q.append(f"{where}.rotate: init=rotate needs a list of bases to rotate through")
            q += [f"{where}.rotate: unknown base {b!r}{near(b, sc.bases)}" for b in l.rotate if b not in sc.bases]
        elif l.init not in ("base", "parent") and l.init not in sc.bases:
            q.append(f"{where}.init: {l.init!r} is not base | parent | rotate or a name in bases"
                     f"{near(l.init, list(sc.bases) + ['base', 'parent', 'rotate'])}")
    for more in registry.checks():  # what the substrates check on a whole scenario
        q += more(sc)
    d = sc.data
    chans = sub.CHANNELS if sub is not None else ()
    if sub is not None and d.channel is not None and d.channel not in chans:
        q.append(f"data.channel: {d.channel!r} is not one of {list(chans)} (substrate {sc.substrate})")
    for i, e in enumerate(sc.topology.edges):
        if sub is not None and e.channel is not None and e.channel not in chans:
            q.append(f"topology.edges[{i}].channel: {e.channel!r} is not one of {list(chans)}")
    edges, topo = generated_edges(sc, set(sc.lineages))
    q += topo
    q += _names_and_sizes(sc, edges)
    p = merged(p, q)
    if not p:
        p += _check_topology(sc, edges)
    if not p:  # plan every task: a lineage whose parents have no model when it needs one fails here
        try:
            build_tasks(expand(sc))
        except EcosimError as e:
            p.append(str(e))
    if not p and sc.sweep:  # every cell of the grid is a scenario of its own
        p += grid.check(sc, check)
    return p


def _names_and_sizes(sc, edges) -> list[str]:
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


def _check_topology(sc, edges) -> list[str]:
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


def load_scenario(path: str | None, overrides=()):
    return load_config(types()["Scenario"](), path, overrides, checks=check)


def read_saved(path: str):
    """The scenario a finished run saved (its config.yaml), read to look at rather than to run:
    keys upgraded and values typed as ``load_scenario`` does, without the checks of what running
    needs, since its model files can live on the machine that made the run (a GPU's /tmp)."""
    return load_config(types()["Scenario"](), path)


def load_saved(directory, name: str, what: str):
    """The scenario a run or sweep directory saved as ``name`` (for ``--resume``)."""
    from pathlib import Path
    if not (Path(directory) / name).is_file():
        raise EcosimError(f"--resume {directory}: not a {what} (no {name})")
    return load_scenario(str(Path(directory) / name))
