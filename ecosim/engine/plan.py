"""A checked scenario expanded into a Plan: the full set of lineages (replicas, matching controls
and ecosystem seeds added) and, for every lineage, the edges its students learn from.

A *lineage* is a vertical sequence of models, one per generation. An *edge* ``src -> dst`` says
that the students of ``dst`` at generation g train on data written by ``src`` at generation
g - lag (lag 1, the default: the previous generation; lag 0: the same generation, so src must be
trained first). A chain is a lineage learning from itself."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field

import networkx as nx

from ecosim.engine import registry, seeds


def node_id(lineage: str, g: int) -> str:
    return f"{lineage}/g{g}"


def channel_of(sc, channel: str | None = None) -> str:
    """An edge's channel: its own, the scenario's data.channel, or the substrate's first."""
    return channel or sc.data.channel or registry.of(sc).CHANNELS[0]


# ----------------------------------------------------------------- the plan
@dataclass
class Edge:
    src: str
    dst: str
    lag: int
    channel: str
    filter: object               # the substrates' filter config
    weight: float


@dataclass
class Plan:
    """Everything the engine runs: lineages by name (replicas and controls expanded) and, for every
    lineage, its incoming edges. ``control_of[c]`` names the lineage that ``c`` is the control of."""
    scenario: object                  # the Scenario (engine.schema)
    lineages: dict[str, object]  # LineageSpec by name
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


def near(name: str, names) -> str:
    m = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {m[0]!r}?" if m else f"; expected one of {sorted(names)}"


def generated_edges(sc, names: set[str]) -> tuple[list[tuple[str, str, object]], list[str]]:
    """(src, dst, explicit spec or None) from every generator of the topology, and problems. An
    edge given twice (by one generator or two) is a problem: one of the two would be lost."""
    t, out, problems = sc.topology, [], []
    given: dict[tuple[str, str], str] = {}  # (src, dst) -> the key that gave it

    def known(n, where):
        if n not in names:
            problems.append(f"{where}: unknown lineage {n!r}{near(n, names)}")
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
    return seeds.rng(seed, purpose)


def treated_lineages(lineages: dict, edges: list[tuple[str, str]]) -> set[str]:
    """Lineages that are treated: a trait at generation 0, or a treated ancestor through ``edges``
    (src, dst). Each gets a control unless it says ``control: false``."""
    g = nx.DiGraph(edges)
    g.add_nodes_from(lineages)
    treated = {n for n, l in lineages.items() if l.trait is not None and l.origin != "base"}
    return treated | {d for t in treated for d in nx.descendants(g, t)}


def expand(sc) -> Plan:
    """Replicas, controls and edges of a checked scenario."""
    lineages, replica_of, replica_index = {}, {}, {}
    for name, spec in sc.lineages.items():
        names = [name] if spec.replicas == 1 else [f"{name}_{i}" for i in range(spec.replicas)]
        for i, n in enumerate(names):
            lineages[n] = spec
            replica_of[n] = name
            replica_index[n] = i
    raw, _ = generated_edges(sc, set(sc.lineages))
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
    return seeds.seed(seed, i)


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


def _copies(name: str, sc) -> list[str]:
    r = sc.lineages[name].replicas
    return [name] if r == 1 else [f"{name}_{i}" for i in range(r)]
