"""The lineage graph: the source of truth of a run. Nodes are models (``lineage/gN``), datasets
(``lineage/gN/channel`` as written, ``.../kept`` after the filter, ``real/channel`` for the
world's own data) and bases (``base:name``, each measured as it is); edges are typed: generated, filtered, trained_on,
initialised_from. Written after every node as node-link JSON and GraphML, with a tidy
``metrics.csv`` (one row per node x metric)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import networkx as nx

from ecosim.store.rundir import atomic_write

METRIC_COLUMNS = ["node", "lineage", "group", "seed", "generation", "metric", "value", "ci_lo", "ci_hi", "measurable"]
# A rate among valid answers (a trait, misalignment) is read only where at least this share of the
# model's answers is valid. Below it, which answers come out valid is itself decided by how the
# model is damaged, so the rate describes a selected minority and compares different populations
# of answers between models: the quickstart owl teacher's "misalignment 0.46" stood on 10% valid
# answers. In owl_chain (3 seeds) the neutral control lineages answer the misalignment questions
# 0.52-0.94 validly and the owl questions 0.97-0.99, so half keeps them; the owl teachers (0.08-0.16)
# and the students on a mismatched base (0.33-0.43) fall below it on misalignment.
VALID_FLOOR = 0.5
# A trait's likelihood readouts, the metrics <trait>_<readout> a substrate may measure beside the
# sampled rate (no valid answer needed): the target's probability share among the options and its
# log-odds against them, after an answer start (both substrates); and the log-odds of the target as
# the bare one-word answer (real models: what a fine-tuned teacher learned, "Owl.").
READOUTS = ("share", "logodds", "answer_logodds")


def new_graph(scenario_name: str) -> nx.DiGraph:
    return nx.DiGraph(scenario=scenario_name)


def add_model(G: nx.DiGraph, node: str, **attrs) -> None:
    G.add_node(node, kind="model", **attrs)


def set_metrics(G: nx.DiGraph, node: str, metrics: dict) -> None:
    """``metrics``: name -> (value, ci_lo or None, ci_hi or None[, per-unit values]), stored flat
    on the node (per-unit values, e.g. per question, as ``{name}_units``)."""
    G.nodes[node]["metrics"] = sorted(metrics)
    for m, (v, lo, hi, *units) in metrics.items():
        G.nodes[node][m] = float(v)
        if lo is not None:
            G.nodes[node][f"{m}_ci_lo"], G.nodes[node][f"{m}_ci_hi"] = float(lo), float(hi)
        if units:
            G.nodes[node][f"{m}_units"] = list(units[0])


def metric(G: nx.DiGraph, node: str, name: str) -> tuple[float, float | None, float | None]:
    a = G.nodes[node]
    return a[name], a.get(f"{name}_ci_lo"), a.get(f"{name}_ci_hi")


def measurable(a: dict, name: str) -> bool:
    """Whether metric ``name`` of a model node's attributes ``a`` can be read: a metric with a
    valid-answer rate (``{name}_valid``) needs VALID_FLOOR of it (a NaN valid rate, nothing
    known about the answers, is not enough); any other metric always can."""
    v = a.get(f"{name}_valid")
    return v is None or bool(v >= VALID_FLOOR)  # NaN >= floor is False


def models(G: nx.DiGraph, status: str | None = "done") -> list[str]:
    return [n for n, a in G.nodes(data=True) if a.get("kind") == "model"
            and (status is None or a.get("status") == status)]


def _graphml_value(v):
    """A GraphML scalar: lists, tuples and dicts become JSON, numpy scalars Python ones (networkx
    declares np.float64 and float as two GraphML types), anything else not bool/int/float/str its str."""
    if isinstance(v, (list, dict, tuple)):
        return json.dumps(v)
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # numpy (or torch) scalar
        v = v.item()
    return v if isinstance(v, (bool, int, float, str)) else str(v)


def _one_type_per_key(dicts: list[dict]) -> None:
    """In place: every attribute name gets one type across ``dicts`` (all nodes, or all edges),
    as GraphML declares one type per key and other readers (igraph, Gephi, yEd) reject two:
    numbers of mixed kinds (bool, int, float) become float, anything mixed with a string str."""
    kinds: dict[str, set] = {}
    for d in dicts:
        for k, v in d.items():
            kinds.setdefault(k, set()).add(type(v))
    cast = {k: (str if str in ts else float) for k, ts in kinds.items() if len(ts) > 1}
    for d in dicts:
        for k in cast.keys() & d.keys():
            d[k] = cast[k](d[k])


def _graphml_safe(G: nx.DiGraph) -> nx.DiGraph:
    """A copy that GraphML can hold and other graph libraries read: scalars only (None attributes
    are dropped, lists and dicts become JSON) and one type per attribute name among the nodes and
    among the edges (e.g. ``size``, 'tiny' on a base node and a count on a dataset node, is
    written as a string on both). graph.json keeps the original values."""
    def fix(d):
        return {k: _graphml_value(v) for k, v in d.items() if v is not None}
    nodes = [(n, fix(a)) for n, a in G.nodes(data=True)]
    edges = [(u, v, fix(a)) for u, v, a in G.edges(data=True)]
    _one_type_per_key([a for _, a in nodes])
    _one_type_per_key([a for *_, a in edges])
    H = nx.DiGraph()
    H.graph.update(fix(G.graph))
    H.add_nodes_from(nodes)
    H.add_edges_from(edges)
    return H


def save(G: nx.DiGraph, run_dir: Path, graphml: bool = True) -> None:
    """graph.json (node-link), metrics.csv and (unless ``graphml`` is False: it is the slow one,
    ~0.2 s at 1000 nodes) graph.graphml; each replaced atomically."""
    run_dir = Path(run_dir)
    data = nx.node_link_data(G, edges="edges")
    atomic_write(run_dir / "graph.json", lambda p: p.write_text(json.dumps(data, indent=1)))
    atomic_write(run_dir / "metrics.csv", lambda p: write_metrics(G, p))
    if graphml:
        atomic_write(run_dir / "graph.graphml", lambda p: nx.write_graphml(_graphml_safe(G), p))


def load(run_dir: Path) -> nx.DiGraph:
    data = json.loads((Path(run_dir) / "graph.json").read_text())
    return nx.node_link_graph(data, directed=True, edges="edges")


def bases(G: nx.DiGraph) -> list[str]:
    """The base nodes measured as they are (``base:NAME``)."""
    return [n for n, a in G.nodes(data=True) if a.get("kind") == "base" and a.get("status") == "done"]


def metric_rows(G: nx.DiGraph) -> list[dict]:
    """One row per measured node and metric; a base's rows have generation -1 (before generation
    0) and its node name as lineage and group."""
    rows = []
    for n in bases(G) + models(G):
        a = G.nodes[n]
        where = {"lineage": n, "group": n, "seed": 0, "generation": -1} if a["kind"] == "base" else {
            "lineage": a["lineage"], "group": a.get("replica_of") or a["lineage"], "seed": a.get("seed", 0),
            "generation": a["generation"]}
        for m in a.get("metrics", []):
            v, lo, hi = metric(G, n, m)
            rows.append({"node": n, **where, "metric": m, "value": v, "ci_lo": lo, "ci_hi": hi,
                         "measurable": measurable(a, m)})
    return rows


def write_metrics(G: nx.DiGraph, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, METRIC_COLUMNS)
        w.writeheader()
        for r in metric_rows(G):
            w.writerow({k: "" if v is None else v for k, v in r.items()})
