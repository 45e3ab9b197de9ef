"""Lifts: each group of lineages (one scenario lineage over its seeds and replicas), its control,
a metric's value and series over the group, the lift of a group over its control with its paired
test, Holm's adjustment over a table, and how a value with its interval is written. The report,
the defenses table and the sweep read them from here."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np

from ecosim.analysis.stats import holm, mean_ci, n_tests, paired_test
from ecosim.store import graph as lg


def groups(G: nx.DiGraph) -> dict[str, list[str]]:
    """Lineages by group: the copies of one scenario lineage over replicas and ecosystem seeds
    (a lineage on its own is its own group)."""
    out: dict[str, list[str]] = {}
    for n in lg.models(G, None):
        a = G.nodes[n]
        key = a.get("replica_of") or a["lineage"]
        if a["lineage"] not in out.setdefault(key, []):
            out[key].append(a["lineage"])
    return out


def controls(G: nx.DiGraph) -> dict[str, str]:
    """Each treated lineage's control lineage, by name (the control nodes' ``control_of``)."""
    return {G.nodes[n]["control_of"]: G.nodes[n]["lineage"] for n in lg.models(G, None) if G.nodes[n].get("control_of")}


def value(G: nx.DiGraph, lineage: str, metric: str, g: int) -> float | None:
    """A finished model's metric at generation g, or None (not made, not measured, or below the
    valid-answer floor: ``graph.measurable``)."""
    a = G.nodes.get(f"{lineage}/g{g}", {})
    if a.get("status") != "done" or metric not in a or not lg.measurable(a, metric):
        return None
    return a[metric]


def series(G: nx.DiGraph, lineages: list[str], metric: str):
    """(generations, mean, lo, hi) of a metric over the measurable models of a group: with
    several lineages (seeds, replicas) the mean and a t-interval over them; with one, the model's
    own interval (over evaluation questions: a sampling interval)."""
    gens = sorted({G.nodes[n]["generation"] for n in lg.models(G) if G.nodes[n]["lineage"] in lineages})
    out = []
    for g in gens:
        vals = [(l, v) for l in lineages if (v := value(G, l, metric, g)) is not None]
        if not vals:
            continue
        if len(lineages) > 1:
            out.append((g, *mean_ci([v for _, v in vals])))
        else:
            a = G.nodes[f"{vals[0][0]}/g{g}"]
            v = vals[0][1]
            lo, hi = a.get(f"{metric}_ci_lo"), a.get(f"{metric}_ci_hi")
            out.append((g, v, v if lo is None else lo, v if hi is None else hi))
    if not out:
        return [], np.array([]), np.array([]), np.array([])
    gs, m, lo, hi = zip(*out)
    return list(gs), np.array(m), np.array(lo), np.array(hi)


def _runs(G: nx.DiGraph, lineages: list[str]) -> str:
    """'3 seeds', '4 replicas' or '6 runs (seeds x replicas)': what a group's lineages are."""
    seeds = {G.nodes[n].get("seed", 0) for n in lg.models(G, None) if G.nodes[n]["lineage"] in lineages}
    n = len(lineages)
    if n == 1:
        return "1 run"
    return f"{n} seeds" if len(seeds) == n else f"{n} replicas" if len(seeds) == 1 else f"{n} runs (seeds x replicas)"


def compare(G: nx.DiGraph, treated: list[str], trait: str, g: int, ctrl: dict | None = None) -> dict:
    """The lift of a group over its control at generation g, each lineage paired with its own
    control by name (``control_of``): over the pairs, a one-sided paired t-test (the effect
    recurring across seeds or replicas); with one pair, the lift alone: one model's interval over
    questions is sampling noise, not replication, so it gets no p-value. Differences of zero
    variance (every pair the same) get no p-value either, and ``test`` says so. ``ctrl``:
    ``controls(G)``, when the caller compares many groups."""
    ctrl = controls(G) if ctrl is None else ctrl
    pairs = [(t, c) for l in treated if l in ctrl
             if (t := value(G, l, trait, g)) is not None and (c := value(G, ctrl[l], trait, g)) is not None]
    if not pairs:
        made = any(f"{l}/g{g}" in G and trait in G.nodes[f"{l}/g{g}"] for l in treated)
        return {"lift": None, "p_value": None, "pairs": 0,
                "test": f"not measurable (valid answers < {lg.VALID_FLOOR:g})" if made else ""}
    t, c = zip(*pairs)
    lift = float(np.mean(t) - np.mean(c))
    if len(pairs) == 1:
        return {"lift": lift, "p_value": None, "pairs": 1,
                "test": "one run: no test of replication (run with seeds: N)"}
    _, lo, hi = mean_ci(np.subtract(t, c))
    p, what = paired_test(t, c)
    runs = _runs(G, [l for l in treated if l in ctrl])
    return {"lift": lift, "lift_ci": [lo, hi], "p_value": None if math.isnan(p) else p, "pairs": len(pairs),
            "test": f"paired t over {runs}" if not math.isnan(p) else f"paired over {runs}: {what}"}


def with_holm(rows: list[dict]) -> int:
    """In place: each row's ``p_holm``, Holm-adjusted over the p-values of ``rows`` (one table;
    rows without a p-value get None and are not counted). Returns the number of tests."""
    ps = [r.get("p_value") for r in rows]
    for r, q in zip(rows, holm(ps)):
        r["p_holm"] = None if math.isnan(q) else q
    return n_tests(ps)


def fmt(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{nd}g}" if isinstance(x, float) and abs(x) < 1e-3 and x != 0 else f"{x:.{nd}f}"


def with_ci(v, ci) -> str:
    """'value [lo, hi]', or the value alone where there is no interval (or none measured)."""
    if v is None:
        return "–"
    return f"{fmt(v)} [{fmt(ci[0])}, {fmt(ci[1])}]" if ci and ci[0] is not None else fmt(v)
