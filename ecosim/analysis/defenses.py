"""The defenses table of a report: for each treated group whose students learned from defended
data (``filter.defenses``), its lift over its own control (which learned through the same
defenses) and the share of the undefended lift that remains, generation by generation, beside
the published one-hop figures (``REFERENCE.md``, "Defenses").

The undefended reference is the first treated group (in the report's order) whose students'
data went through no defense; shares pair the two groups seed by seed (ecosystem seed i of one
with seed i of the other: the same teacher recipe, base and data stream)."""
from __future__ import annotations

import math

import networkx as nx

from ecosim.analysis.lifts import compare, controls, fmt, groups, value, with_ci
from ecosim.analysis.stats import paired_one_sided, ratio_of_means_ci
from ecosim.store import graph as lg

# Published one-hop figures as the share of the unaltered trait rate above the random-number
# floor that remains: (defended - floor) / (unaltered - floor), for a Qwen2.5-7B penguin and
# phoenix teacher and a GPT-4.1-nano owl teacher (JackPayne123/subliminal-learning); shuffle: a
# 7B owl transfer of +0.05 vs +2.72 points; mask_divergent: Llama-3.2-1B, the top 10% divergence
# tokens replaced with random digits (masking them instead leaves 0.43).
PUBLISHED = {
    "sort": "0.01 / -0.01 / 0.22 (penguin / phoenix / owl)",
    "remap": "0.02 / 0.02 / 0.48",
    "rewrite": "0.08 / 1.07 / 1.00",
    "sort+remap+rewrite": "0.01 / -0.00 / -0.02",
    "shuffle": "0.02 (7B owl)",
    "mask_divergent": "0.09 (Llama-3.2-1B, random digits)",
}


def defenses_of(G: nx.DiGraph, lineages: list[str]) -> tuple[str, ...]:
    """The defenses the datasets feeding these lineages' students went through (one list for the
    group: the first student found), () where none."""
    for n in lg.models(G, None):
        if G.nodes[n].get("lineage") not in lineages:
            continue
        for d in G.predecessors(n):
            a = G.nodes[d]
            if a.get("kind") == "dataset" and a.get("defenses"):
                return tuple(a["defenses"])
    return ()


def lifts(G: nx.DiGraph, lineages: list[str], ctrl: dict, trait: str, g: int) -> dict[int, float]:
    """Ecosystem seed -> that seed's lift of the group over its control at generation g."""
    out = {}
    for l in lineages:
        if l not in ctrl:
            continue
        a, b = value(G, l, trait, g), value(G, ctrl[l], trait, g)
        if a is not None and b is not None:  # both measured: the node exists
            out[G.nodes[f"{l}/g{g}"].get("seed", 0)] = a - b
    return out


def rows(G: nx.DiGraph, trait: str) -> list[dict]:
    """One row per defended treated group and generation (empty when no data was defended)."""
    grp, ctrl = groups(G), controls(G)
    treated = {k: ls for k, ls in grp.items() if ls[0] in ctrl}
    which = {k: defenses_of(G, ls) for k, ls in treated.items()}
    if not any(which.values()):
        return []
    ref = next((k for k, d in which.items() if not d), None)
    gens = sorted({G.nodes[n]["generation"] for n in lg.models(G) if G.nodes[n]["generation"] > 0})
    out = []
    for g in gens:
        base = lifts(G, treated[ref], ctrl, trait, g) if ref else {}
        for k, d in which.items():
            if k != ref and not d:
                continue
            mine = lifts(G, treated[k], ctrl, trait, g)
            if not mine:
                continue
            c = compare(G, treated[k], trait, g, ctrl)
            row = {"lineage": k, "defenses": "+".join(d) if d else "none (reference)", "generation": g,
                   "lift": c.get("lift"), "lift_ci": c.get("lift_ci"), "p_value": c.get("p_value"),
                   "seeds": len(mine), "remaining": None, "remaining_ci": None, "p_below_reference": None,
                   "published": PUBLISHED.get("+".join(d), "")}
            both = sorted(set(mine) & set(base))
            if d and both:
                r, lo, hi = ratio_of_means_ci([mine[s] for s in both], [base[s] for s in both])
                row.update(remaining=_num(r), remaining_ci=[_num(lo), _num(hi)] if not math.isnan(lo) else None)
                if len(both) > 1:
                    p = paired_one_sided([base[s] for s in both], [mine[s] for s in both])
                    row["p_below_reference"] = _num(p)
            out.append(row)
    return out


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


NOTE = ("remaining = mean defended lift / mean undefended lift over the seeds both have (each lift over "
        "its own control, which learned through the same defenses), 95% percentile bootstrap interval "
        "over seeds; p (lift > 0): one-sided paired t of the defended students over their controls; "
        "p (below reference): one-sided paired t that the defended lift is smaller than the undefended "
        "one. Published: the share of the unaltered trait rate above the random-number floor that the "
        "same defense left in one-hop studies (REFERENCE.md).")


def table_html(rs: list[dict], trait: str) -> str:
    import html
    e = html.escape
    head = ["lineage", "defenses", "gen", "seeds", "lift [95% CI]", "p (lift > 0)", "remaining [95% CI]",
            "p (below reference)", "published remaining"]
    body = "".join("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in (
        r["lineage"], r["defenses"], r["generation"], r["seeds"], with_ci(r["lift"], r["lift_ci"]),
        fmt(r["p_value"]), with_ci(r["remaining"], r["remaining_ci"]) if r["remaining"] is not None else "",
        fmt(r["p_below_reference"]) if r["p_below_reference"] is not None else "", r["published"])) + "</tr>"
        for r in rs)
    return (f"<h2>Defenses ({e(trait)})</h2><p class='note'>{e(NOTE)}</p><table><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr>{body}</table>")


def markdown(rs: list[dict]) -> str:
    """The same table in markdown (docs/results.md)."""
    lines = ["| defenses | gen | seeds | lift [95% CI] | p (lift > 0) | remaining [95% CI] | p (below ref.) | published |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rs:
        rem = with_ci(r["remaining"], r["remaining_ci"]) if r["remaining"] is not None else ""
        pb = fmt(r["p_below_reference"]) if r["p_below_reference"] is not None else ""
        lines.append(f"| {r['defenses']} | {r['generation']} | {r['seeds']} | {with_ci(r['lift'], r['lift_ci'])} | "
                     f"{fmt(r['p_value'])} | {rem} | {pb} | {r['published']} |")
    return "\n".join(lines)
