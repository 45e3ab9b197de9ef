"""The lineage graph: the source of truth of a run. Nodes are models (``lineage/gN``), datasets
(``lineage/gN/channel`` as written, ``.../kept`` after the filter, ``real/channel`` for the
world's own data) and bases (``base:name``); edges are typed: generated, filtered, trained_on,
initialised_from. Written after every node as node-link JSON and GraphML, with a tidy
``metrics.csv`` (one row per node x metric)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import networkx as nx

METRIC_COLUMNS = ["node", "lineage", "generation", "metric", "value", "ci_lo", "ci_hi"]


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


def models(G: nx.DiGraph, status: str | None = "done") -> list[str]:
    return [n for n, a in G.nodes(data=True) if a.get("kind") == "model"
            and (status is None or a.get("status") == status)]


def _graphml_safe(G: nx.DiGraph) -> nx.DiGraph:
    """GraphML takes only scalars: None attributes are dropped, lists and dicts become JSON."""
    def fix(d):
        return {k: json.dumps(v) if isinstance(v, (list, dict, tuple)) else v
                for k, v in d.items() if v is not None}
    H = nx.DiGraph()
    H.graph.update(fix(G.graph))
    H.add_nodes_from((n, fix(a)) for n, a in G.nodes(data=True))
    H.add_edges_from((u, v, fix(a)) for u, v, a in G.edges(data=True))
    return H


def atomic_write(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``: a crash never leaves half a file."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


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


def metric_rows(G: nx.DiGraph) -> list[dict]:
    rows = []
    for n in models(G):
        a = G.nodes[n]
        for m in a.get("metrics", []):
            v, lo, hi = metric(G, n, m)
            rows.append({"node": n, "lineage": a["lineage"], "generation": a["generation"],
                         "metric": m, "value": v, "ci_lo": lo, "ci_hi": hi})
    return rows


def write_metrics(G: nx.DiGraph, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, METRIC_COLUMNS)
        w.writeheader()
        for r in metric_rows(G):
            w.writerow({k: "" if v is None else v for k, v in r.items()})
