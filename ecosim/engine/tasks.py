"""A Plan as tasks: each base measured as it is, generation 0 of each lineage, each model writing
on its edges' channels, each student's training; with their dependencies and a deterministic
order. Validation plans every task too, so a lineage whose parents have no model when it needs
one is named before anything runs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

import networkx as nx

from ecosim.engine import registry
from ecosim.engine.plan import Plan, node_id
from ecosim.errors import EcosimError


@dataclass
class Task:
    kind: str                      # base | origin | write | train
    lineage: str                   # base: the lineage that measures it
    generation: int                # base: -1
    channel: str | None = None
    base: str | None = None        # base: the base it measures; write: the writer's (its weights descend from)
    deps: list[tuple] = field(default_factory=list)
    filters: list = field(default_factory=list)          # write: one dataset per filter
    datasets: list[str] = field(default_factory=list)    # write: their ids
    sources: list[tuple] = field(default_factory=list)   # train: (write key, filter index, weight, edge)
    init: dict = field(default_factory=dict)             # train: where the student starts
    twin: list[tuple] = field(default_factory=list)      # train: (write key, filter index) its twin trains on
    lists: tuple | None = None     # write: the treated twin's write whose kept lists this control labels

    @property
    def key(self) -> tuple:
        return (self.kind, self.lineage, self.generation, self.channel or self.base)


def model_key(lineage: str, g: int) -> tuple:
    return ("origin", lineage, 0, None) if g == 0 else ("train", lineage, g, None)


def filter_id(f, default) -> str:
    """A filtered dataset's name: "kept" under the scenario's filter, else a hash of the filter's
    settings (unset ones, None or empty, left out: a setting added later keeps old names)."""
    if f == default:
        return "kept"
    d = {k: v for k, v in dataclasses.asdict(f).items() if v is not None and v != []}
    return "kept-" + hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:6]


def base_of(plan: Plan, lineage: str, g: int) -> str:
    """The base a model's weights descend from (its drift is measured against it)."""
    spec = plan.lineages[lineage]
    if g == 0:
        return spec.base
    b = plan.init_base(lineage, g)
    return b if b is not None else base_of(plan, *init_parent(plan, lineage, g))


def init_parent(plan: Plan, lineage: str, g: int) -> tuple[str, int]:
    """init=parent: the lineage's previous model, or (no generation 0) its first parent's."""
    if g - 1 >= 1 or plan.lineages[lineage].origin != "none":
        return lineage, g - 1
    return plan.parents[lineage][0].src, g - 1


def has_model(plan: Plan, lineage: str, g: int) -> bool:
    return g >= 0 and (g >= 1 or plan.lineages[lineage].origin != "none")


def base_measurers(plan: Plan) -> dict[str, str]:
    """Each base a model starts from -> the lineage that measures it as it is: one of replica 0 of
    ecosystem seed 0 (whose bases are the configured ones, with no replica offset), preferably one
    that loads that base anyway."""
    used = {}
    for name, spec in plan.lineages.items():
        if spec.origin != "none":
            used.setdefault(spec.base, []).append(name)
        for g in range(1, plan.scenario.generations + 1):
            b = plan.init_base(name, g)
            if b is not None:
                used.setdefault(b, []).append(name)
    first = [n for n in plan.lineages if not plan.replica_index.get(n, 0) and not plan.seed_index.get(n, 0)]
    return {b: next((n for n in users if n in first), first[0]) for b, users in sorted(used.items())}


def build_tasks(plan: Plan) -> dict[tuple, Task]:
    """Every task of the run with its dependencies, keyed by (kind, lineage, generation, channel
    or, for a base, its name)."""
    sc = plan.scenario
    tasks: dict[tuple, Task] = {}
    for b, runner in base_measurers(plan).items():  # no task waits for these: references only
        t = Task("base", runner, -1, base=b)
        tasks[t.key] = t
    for name, spec in plan.lineages.items():
        if spec.origin != "none":
            tasks[model_key(name, 0)] = Task("origin", name, 0)
    # A teacher trained to a target strength: its control trains as many updates, so waits for it.
    if sc.teacher.target_logodds is not None:
        for c, treated in plan.control_of.items():
            if plan.lineages[c].origin == "finetune" and model_key(treated, 0) in tasks:
                tasks[model_key(c, 0)].deps.append(model_key(treated, 0))
    for g in range(1, sc.generations + 1):
        for name in plan.lineages:
            t = Task("train", name, g)
            regime = sc.data.regime
            for e in plan.parents[name]:
                last = g - e.lag
                gens = range(0, last + 1) if regime.startswith("accumulate") else [last]
                gens = [gs for gs in gens if has_model(plan, e.src, gs)]
                for gs in gens:
                    wk = ("write", e.src, gs, e.channel)
                    w = tasks.setdefault(wk, Task("write", e.src, gs, e.channel, base=base_of(plan, e.src, gs),
                                                  deps=[model_key(e.src, gs)]))
                    if e.filter not in w.filters:
                        w.filters.append(e.filter)
                        w.datasets.append(f"{e.src}/g{gs}/{e.channel}/{filter_id(e.filter, sc.data.filter)}")
                    t.sources.append((wk, w.filters.index(e.filter), e.weight / len(gens), e))
            if not t.sources:
                raise EcosimError(f"lineages.{name}: generation {g} has no data to learn from: its parents "
                                  f"({[e.src for e in plan.parents[name]]}) have no model at the generation it needs")
            channels = {wk[3] for wk, *_ in t.sources}
            if len(channels) > 1:
                raise EcosimError(f"lineages.{name}: its parents write on different channels {sorted(channels)}; "
                                  "a student learns from one channel")
            base = plan.init_base(name, g)
            if base is not None:
                t.init = {"base": base}
            else:
                src, gp = init_parent(plan, name, g)
                t.init = {"node": node_id(src, gp), "base_of_node": base_of(plan, src, gp)}
                t.deps.append(model_key(src, gp))
            t.deps += sorted({wk for wk, *_ in t.sources})
            tasks[t.key] = t
    # A treated lineage and its control train on the same number of examples each generation:
    # each student's task also gets the datasets its twin trains on, to size its own set by both.
    for t in [t for t in tasks.values() if t.kind == "train"]:
        twin = twin_of(plan, t.lineage)
        if twin is not None:
            tt = tasks[("train", twin, t.generation, None)]
            t.twin = sorted({(wk, fi) for wk, fi, *_ in tt.sources})
            t.deps += sorted({wk for wk, _ in t.twin} - set(t.deps))
    _label_twins(plan, tasks)
    return tasks


def _label_twins(plan: Plan, tasks: dict[tuple, Task]) -> None:
    """Where the substrate says a control labels its treated twin's lists on a channel
    (``labels_twin``; hf: ``text.logit_lists: twin``), the control's write on it waits for the
    twin's write at the same generation and gets its datasets, filter for filter."""
    labels_twin = getattr(registry.of(plan.scenario), "labels_twin", None)
    if labels_twin is None:
        return
    for w in [t for t in tasks.values() if t.kind == "write" and t.lineage in plan.control_of]:
        if not labels_twin(plan.scenario, w.channel):
            continue
        treated = plan.control_of[w.lineage]
        tw = tasks.get(("write", treated, w.generation, w.channel))
        if tw is None or any(f not in tw.filters for f in w.filters):
            raise EcosimError(f"lineages.{w.lineage}: labels its treated twin's lists on {w.channel} (text.logit_lists: "
                              f"twin), but {treated} writes no {w.channel} at generation {w.generation}"
                              + (" under the same filter" if tw is not None else "")
                              + f"; give {treated} a {w.channel} student, or set text.logit_lists: own")
        w.lists = tw.key
        w.deps.append(tw.key)


def twin_of(plan: Plan, lineage: str) -> str | None:
    """A control's treated lineage, or a treated lineage's control (None: neither)."""
    if lineage in plan.control_of:
        return plan.control_of[lineage]
    return next((c for c, t in plan.control_of.items() if t == lineage), None)


def dependencies(tasks: dict[tuple, Task]) -> nx.DiGraph:
    """Task keys, with an edge from each task to every task that waits for it."""
    G = nx.DiGraph()
    G.add_nodes_from(tasks)
    G.add_edges_from((d, k) for k, t in tasks.items() for d in t.deps)
    return G


def order(tasks: dict[tuple, Task]) -> list[tuple]:
    """Dependency order; ties broken by generation, then kind, then lineage (deterministic)."""
    rank = {"base": -1, "origin": 0, "train": 1, "write": 2}
    return list(nx.lexicographical_topological_sort(
        dependencies(tasks), key=lambda k: (k[2], rank[k[0]], k[1], k[3] or "")))
