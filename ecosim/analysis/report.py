"""``ecosim report RUN_DIR``: pictures of a run and one self-contained page.

Writes RUN_DIR/report/index.html (styles, scripts and images inline: it works offline and can be
mailed as one file) plus the images as files: the lineage graph (graph.png, graph.svg), drift
plots (trait, misalignment and valid-answer rate, capability, drift, datasets) and a summary
table. Works on a finished run and on one still running (pending nodes are drawn hollow)."""
from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import networkx as nx
import numpy as np

from ecosim.errors import EcosimError
from ecosim.store import graph as lg
from ecosim.analysis import defenses
from ecosim.analysis.lifts import (_runs, compare, controls, fmt, groups, series, value,  # noqa: F401  (report.X)
                                   with_ci, with_holm)
from ecosim.analysis.stats import n_tests

ROW_H, COL_W = 0.42, 1.0          # inches per lineage row / per generation column (static graph)
EDGE_STYLE = {"same": ("#555555", "-"), "mismatched": ("#d62728", "--"), "real": ("#2ca02c", ":"),
              "init": ("#bbbbbb", "-")}


# ----------------------------------------------------------------- reading a run
def load_run(run_dir: Path):
    run_dir = Path(run_dir)
    if not (run_dir / "graph.json").is_file():
        raise EcosimError(f"{run_dir}: not a run directory (no graph.json); run `ecosim run` first")
    try:
        G = lg.load(run_dir)
    except (json.JSONDecodeError, KeyError, nx.NetworkXError) as e:
        raise EcosimError(f"{run_dir / 'graph.json'}: unreadable lineage graph ({type(e).__name__}: {e})") from None
    return G


# Runs made before 0.2.0 recorded no metric kinds; these are what every substrate measured then.
KINDS_BEFORE_0_2 = {"misalignment": "trait", "heldout_loss": "capability", "drift_kl": "drift"}


def metric_kinds(G: nx.DiGraph) -> dict[str, str]:
    """{metric: trait | capability | drift} as the run's substrate declared it (graph attribute)."""
    return G.graph.get("metric_kinds") or KINDS_BEFORE_0_2


def trait_names(G: nx.DiGraph) -> list[str]:
    """The run's trait metrics (those with a _valid twin on language models, or 'skill')."""
    names, other = set(), {m for m, k in metric_kinds(G).items() if k != "trait"}
    for n in lg.models(G):
        ms = G.nodes[n].get("metrics", [])
        names |= {m for m in ms if m not in other and not m.endswith("_valid")}
    def key(m):  # each trait, then its likelihood readouts (lg.READOUTS: _logodds, _share, then
        # _answer_logodds, read without an answer start); misalignment last
        r = next((r for r in sorted(lg.READOUTS, key=len, reverse=True) if m.endswith(f"_{r}")), None)
        root = m[:-len(r) - 1] if r else m
        return (root == "misalignment", root, r is not None, r == "answer_logodds", r or "")
    return sorted(names, key=key)


def lead_trait(G: nx.DiGraph, traits: list[str]) -> tuple[str, str]:
    """(the trait the report leads with, why, or ""): the first trait, unless no trained model
    (generation >= 1) can be read on it (valid answers under the floor: a small real model rarely
    answers in one word) and it has a likelihood readout, which is then read first."""
    t = traits[0]
    students = [n for n in lg.models(G) if G.nodes[n].get("generation", 0) >= 1 and t in G.nodes[n]]
    alt = next((f"{t}{r}" for r in ("_logodds", "_share") if f"{t}{r}" in traits), None)
    if alt and students and not any(lg.measurable(G.nodes[n], t) for n in students):
        return alt, (f"{t} (sampled one-word answers) is not measurable for any student: under "
                     f"{lg.VALID_FLOOR:g} of their answers name an option. The report leads with {alt}, "
                     f"the likelihood readout, which needs no valid answer; {t} has its own table below.")
    return t, ""


def lineage_rows(G: nx.DiGraph) -> list[str]:
    """Lineages top to bottom: each treated lineage directly above its control."""
    lineages = sorted({a["lineage"] for _, a in G.nodes(data=True) if a.get("kind") == "model"})
    control = {G.nodes[n]["control_of"]: G.nodes[n]["lineage"] for n in lg.models(G, None)
               if G.nodes[n].get("control_of")}
    rows = []
    for l in lineages:
        if l in rows or l in control.values():
            continue
        rows.append(l)
        if l in control:
            rows.append(control[l])
    return rows + [l for l in lineages if l not in rows]


def layout(G: nx.DiGraph) -> tuple[dict, list[str]]:
    """Positions (x, y): generation g's models at x = 2g, the datasets they wrote at 2g + 1, one
    row per lineage (so no two nodes share a place); real data in a row of its own at the bottom."""
    rows = lineage_rows(G)
    y = {l: -i for i, l in enumerate(rows)}
    pos = {}
    for n, a in G.nodes(data=True):
        if a.get("kind") == "model":
            pos[n] = (2 * a["generation"], y[a["lineage"]])
        elif a.get("kind") == "dataset" and a.get("stage") == "filtered":
            pos[n] = (2 * a["generation"] + 1, y[a["lineage"]])
    # Real data: drawn once per generation that uses it, in a row of its own below the lineages
    # (drawing-only nodes "real/CHANNEL@gN"), so that its edges stay short.
    real = sorted(n for n, a in G.nodes(data=True) if a.get("stage") == "real")
    for i, n in enumerate(real):
        for v in G.successors(n):
            pos[f"{n}@g{G.nodes[v]['generation']}"] = (2 * G.nodes[v]["generation"] - 1, -len(rows) - i)
    return pos, rows


def attrs(G: nx.DiGraph, n: str) -> dict:
    """A drawn node's attributes (a drawing-only real-data copy has its dataset's)."""
    return G.nodes[n.split("@")[0]]


def drawn_edges(G: nx.DiGraph, pos: dict) -> list[tuple[str, str, str]]:
    """(u, v, style) for each edge between drawn nodes: writer -> kept dataset (through the
    generated one), dataset -> student by base match or real data, and parent -> student inits."""
    out = []
    for u, v, a in G.edges(data=True):
        k = a.get("kind")
        if k == "filtered" and v in pos:
            writer = G.nodes[u]["model"]
            if writer in pos:
                out.append((writer, v, "same"))
        elif k == "trained_on" and a.get("real") and v in pos:
            out.append((f"{u}@g{G.nodes[v]['generation']}", v, "real"))
        elif k == "trained_on" and u in pos and v in pos:
            out.append((u, v, "same" if a.get("same_base") else "mismatched"))
        elif k == "initialised_from" and u in pos and v in pos:
            out.append((u, v, "init"))
    return out


# ----------------------------------------------------------------- static drawings
def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def draw_graph(G: nx.DiGraph, trait: str | None):
    """The lineage graph as a matplotlib figure: colour = trait rate, ring = misalignment."""
    plt = pyplot()
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    pos, rows = layout(G)
    gens = max((a["generation"] for _, a in G.nodes(data=True) if a.get("kind") == "model"), default=0)
    n_rows = len(rows) + sum(1 for n, a in G.nodes(data=True) if a.get("stage") == "real")
    fig, ax = plt.subplots(figsize=(3.2 + COL_W * (2 * gens + 3), 1.8 + ROW_H * max(n_rows, 2)))
    cmap, norm = colormaps["viridis"], Normalize(0, 1)
    ring = colormaps["Reds"]
    for style in EDGE_STYLE:
        segs = [(pos[u], pos[v]) for u, v, s in drawn_edges(G, pos) if s == style]
        colour, ls = EDGE_STYLE[style]
        ax.add_collection(LineCollection(segs, colors=colour, linestyles=ls, linewidths=1.0 if style != "init" else 0.6,
                                         alpha=0.8, zorder=1))
    for i, l in enumerate(rows):  # pair each control with its treated lineage: one shaded band
        ctrl = [G.nodes[n] for n in lg.models(G, None) if G.nodes[n]["lineage"] == l and G.nodes[n].get("control_of")]
        if ctrl:
            ax.axhspan(-i - 0.45, -i + 1.45, color="#f0f0f0", zorder=0)
    models = lg.models(G, None)
    done = [n for n in models if G.nodes[n]["status"] == "done" and trait in G.nodes[n]]
    pending = [n for n in models if n not in done]
    mis = "misalignment" if trait != "misalignment" else None
    grey = "#c8c8c8"  # below the valid-answer floor: no colour that reads as a rate

    def fill(n):
        return cmap(norm(G.nodes[n][trait])) if lg.measurable(G.nodes[n], trait) else grey

    def edge(n):
        if not mis:
            return "black"
        return ring(0.25 + 0.75 * G.nodes[n].get(mis, 0.0)) if lg.measurable(G.nodes[n], mis) else grey
    ax.scatter([pos[n][0] for n in done], [pos[n][1] for n in done], s=150, zorder=3,
               c=[fill(n) for n in done], edgecolors=[edge(n) for n in done], linewidths=2.0)
    ax.scatter([pos[n][0] for n in pending], [pos[n][1] for n in pending], s=150, zorder=3,
               facecolors="white", edgecolors="#999999", linewidths=1.0)
    ds = [n for n in pos if attrs(G, n).get("kind") == "dataset"]
    ax.scatter([pos[n][0] for n in ds], [pos[n][1] for n in ds], s=60, marker="s", zorder=3,
               c=["#2ca02c" if attrs(G, n).get("stage") == "real" else "#dddddd" for n in ds],
               edgecolors="#777777", linewidths=0.8)
    reals = sorted(n for n, a in G.nodes(data=True) if a.get("stage") == "real")
    ax.set_yticks([-i for i in range(len(rows) + len(reals))],
                  [_row_label(G, l) for l in rows] + [f"{n} (world data)" for n in reals], fontsize=9)
    ax.set_xticks([2 * g for g in range(gens + 1)], [f"gen {g}" for g in range(gens + 1)], fontsize=9)
    ax.xaxis.tick_top()
    ax.set_xlim(-1.6, 2 * gens + 1.6)
    ax.set_ylim(-n_rows + 0.4, 0.8)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.tick_params(length=0)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.025, pad=0.01).set_label(f"{trait} rate (fill)", fontsize=9)
    handles = [Line2D([], [], marker="o", ls="", color="white", markeredgewidth=2.0, markersize=9,
                      markeredgecolor=ring(0.25 + 0.75 * v), label=f"misalignment {v:g} (ring)")
               for v in (0.0, 0.5, 1.0)] if mis else []
    handles += [Line2D([], [], marker="o", ls="", color=grey, markeredgecolor=grey,
                       label=f"not measurable (valid < {lg.VALID_FLOOR:g})")]
    handles += [Line2D([], [], color=EDGE_STYLE[k][0], ls=EDGE_STYLE[k][1], label=lab) for k, lab in
               (("same", "data, same base"), ("mismatched", "data, mismatched base"), ("real", "real data mixed in"),
                ("init", "initialised from parent"))]
    handles += [Line2D([], [], marker="o", ls="", color="#21918c", label="model"),
                Line2D([], [], marker="s", ls="", color="#dddddd", markeredgecolor="#777777", label="filtered dataset"),
                Line2D([], [], marker="o", ls="", color="white", markeredgecolor="#999999", label="pending")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _row_label(G, lineage: str) -> str:
    """'name (base)', or 'name (base -> students' bases)' when its students start elsewhere."""
    nodes = sorted((G.nodes[n] for n in lg.models(G, None) if G.nodes[n]["lineage"] == lineage),
                   key=lambda a: a["generation"])
    first = nodes[0]["lineage_base"]
    later = list(dict.fromkeys(a["base"] for a in nodes if a["generation"] > 0))
    return f"{lineage} ({first}" + (f" -> {'/'.join(later)}" if later and later != [first] else "") + ")"


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts in ``fig`` whose boxes overlap (the readability check)."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    found = fig.findobj(lambda o: hasattr(o, "get_text") and hasattr(o, "get_window_extent"))
    texts = [t for t in {id(t): t for t in found}.values() if t.get_visible() and t.get_text().strip()]
    boxes = list({(t.get_text(), tuple(t.get_window_extent(r).extents.round(1))): (t.get_text(), t.get_window_extent(r))
                  for t in texts}.values())  # one label found twice is one label
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def unmeasurable(G: nx.DiGraph, lineages: list[str], metric: str) -> list[tuple[int, float]]:
    """(generation, value) of the group's models whose metric is below the valid-answer floor."""
    return sorted((G.nodes[n]["generation"], G.nodes[n][metric]) for n in lg.models(G)
                  if G.nodes[n]["lineage"] in lineages and metric in G.nodes[n]
                  and not lg.measurable(G.nodes[n], metric))


def _style(G, lineages: list[str]) -> dict:
    """Controls dashed; lineages whose students start from another base dotted, square markers."""
    nodes = [G.nodes[n] for n in lg.models(G, None) if G.nodes[n]["lineage"] == lineages[0]]
    a = nodes[0]
    mismatched = any(b["base"] != b["lineage_base"] for b in nodes)
    return {"ls": "--" if a.get("role") == "control" else (":" if mismatched else "-"),
            "marker": "s" if mismatched else "o"}


def plot_metrics(G: nx.DiGraph, metrics: list[str], title: str, ylabel: str, unit_interval: bool = True):
    """One panel per metric: each lineage (or replica group, mean with CI over replicas) vs
    generation, with its interval as a band; controls dashed, mismatched bases dotted."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.6), squeeze=False)
    grp = groups(G)
    colours = {}
    for ax, metric in zip(axes[0], metrics):
        for name, ls in grp.items():
            gs, m, lo, hi = series(G, ls, metric)
            if not gs:
                continue
            key = name.removesuffix("_control")
            colours.setdefault(key, f"C{len(colours) % 10}")
            st = _style(G, ls)
            label = name + (f" (x{len(ls)})" if len(ls) > 1 else "")
            ax.plot(gs, m, color=colours[key], ls=st["ls"], marker=st["marker"], ms=4, label=label)
            ax.fill_between(gs, lo, hi, color=colours[key], alpha=0.15, lw=0)
        for name, ls in grp.items():  # below the valid-answer floor: grey and hollow, in no mean or test
            bad = unmeasurable(G, ls, metric)
            if bad:
                ax.scatter([g for g, _ in bad], [v for _, v in bad], s=22, facecolors="none", edgecolors="#aaaaaa",
                           zorder=3, label=f"not measurable (valid < {lg.VALID_FLOOR:g})")
        ax.set_title(metric, fontsize=10)
        _whole_generations(ax)
        ax.set_xlabel("generation")
        ax.set_ylabel(ylabel)
        if unit_interval:
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    handles, labels = [], []
    for ax in axes[0]:  # every panel's entries once (a grey point may be on one panel only)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h), labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _whole_generations(ax) -> None:
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def kept_by_channel(G: nx.DiGraph) -> list[dict]:
    """What each lineage's writers kept, per channel, over all generations (and filters)."""
    rows: dict[tuple[str, str], list[int]] = {}
    for _, a in G.nodes(data=True):
        if a.get("stage") == "filtered" and a.get("status", "done") == "done":
            r = rows.setdefault((a["channel"], a["lineage"]), [0, 0])
            r[0] += a["size"]
            r[1] += a["total"]
    return [{"channel": c, "writer": l, "kept": k, "total": t, "kept_fraction": k / t if t else float("nan")}
            for (c, l), (k, t) in sorted(rows.items())]


def _kept_table(rows) -> str:
    e = html.escape
    head = ["channel", "writer (all generations)", "kept", "written", "kept fraction"]
    body = ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in (
        r["channel"], r["writer"], r["kept"], r["total"], fmt(r["kept_fraction"]))) + "</tr>" for r in rows]
    return f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>"


def plot_datasets(G: nx.DiGraph):
    """Kept fraction per filtered dataset, and why the rest was rejected (summed per lineage)."""
    plt = pyplot()
    ds = [(n, a) for n, a in G.nodes(data=True) if a.get("stage") == "filtered"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6))
    grp = groups(G)
    mixed = len({a["channel"] for _, a in ds}) > 1  # then each line says which channel it is
    for i, (name, ls) in enumerate(grp.items()):
        pts = sorted((a["generation"], a["kept_fraction"]) for _, a in ds if a["lineage"] in ls)
        if mixed:
            name = f"{name} ({'/'.join(sorted({a['channel'] for _, a in ds if a['lineage'] in ls}))})"
        if pts:
            by = {}
            for g, k in pts:
                by.setdefault(g, []).append(k)
            a1.plot(sorted(by), [np.mean(by[g]) for g in sorted(by)], marker="o", ms=4, label=name, color=f"C{i % 10}",
                    ls=_style(G, ls)["ls"])
    a1.set_title("kept fraction of each model's writing", fontsize=10)
    _whole_generations(a1)
    a1.set_xlabel("generation of the writer")
    a1.set_ylim(0, 1.02)
    a1.grid(alpha=0.3)
    reasons: dict[str, dict[str, int]] = {}
    for _, a in ds:
        key = a["lineage"]
        for r, c in (a.get("rejected") or {}).items():
            reasons.setdefault(r, {}).setdefault(key, 0)
            reasons[r][key] += c
    lineages = sorted({a["lineage"] for _, a in ds})
    bottom = np.zeros(len(lineages))
    for j, (r, per) in enumerate(sorted(reasons.items())):
        vals = np.array([per.get(l, 0) for l in lineages], float)
        a2.barh(lineages, vals, left=bottom, label=r, color=f"C{j % 10}")
        bottom += vals
    a2.set_title("rejected samples by reason (all generations)", fontsize=10)
    a2.tick_params(axis="y", labelsize=7 if len(lineages) > 12 else 9)
    if reasons:
        a2.legend(fontsize=8, frameon=False)
    h, lab = a1.get_legend_handles_labels()
    if 0 < len(h) <= 12:
        a1.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------- the summary table
def _control_groups(G: nx.DiGraph, grp: dict) -> dict[str, str]:
    """treated group -> its control group."""
    ctrl, group_of = controls(G), {l: k for k, ls in grp.items() for l in ls}
    return {k: group_of[ctrl[ls[0]]] for k, ls in grp.items() if ls[0] in ctrl}


def size_pairs(G: nx.DiGraph) -> list[tuple[str, str, int, int]]:
    """(student, its control's student, their training-set sizes) for every trained pair."""
    ctrl = controls(G)
    out = []
    for n in lg.models(G):
        a = G.nodes[n]
        c = f"{ctrl.get(a['lineage'])}/g{a['generation']}"
        if a["lineage"] in ctrl and "train_size" in a and G.nodes.get(c, {}).get("train_size") is not None:
            out.append((n, c, a["train_size"], G.nodes[c]["train_size"]))
    return out


def summary(G: nx.DiGraph, trait: str) -> list[dict]:
    """Per group (a lineage over its seeds and replicas): generation-0 and final values, and the
    lift over its control at the final generation (``compare``). Intervals are over seeds (and
    replicas) where there are several, else the model's own interval over questions."""
    grp = groups(G)
    cg = _control_groups(G, grp)
    rows = []
    for name, ls in grp.items():
        gs, m, lo, hi = series(G, ls, trait)
        made = [G.nodes[n]["generation"] for n in lg.models(G) if G.nodes[n]["lineage"] in ls and trait in G.nodes[n]]
        if not made:
            continue
        last = max(made)
        ok = bool(gs) and gs[-1] == last
        row = {"lineage": name, "replicas": len(ls), "runs": _runs(G, ls),
               "interval": "over " + _runs(G, ls) if len(ls) > 1 else "over questions (sampling)",
               "gen0": float(m[0]) if gs and gs[0] == 0 else None, "final_generation": last,
               "gen0_measurable": bool(gs and gs[0] == 0) or 0 not in made,
               "final": float(m[-1]) if ok else None, "final_ci": [float(lo[-1]), float(hi[-1])] if ok else None,
               "measurable": ok, "control": None, "lift": None, "p_value": None, "test": ""}
        if name in cg:
            row["control"] = cg[name]
            row.update({k: v for k, v in compare(G, ls, trait, last).items() if k != "pairs"})
        rows.append(row)
    with_holm(rows)
    return rows


def base_rows(G: nx.DiGraph, traits: list[str]) -> list[dict]:
    """Each base measured as it is (no trait, no training): every readout with its interval and
    valid-answer rate; the reference for the teachers (generation 0) and the students."""
    rows = []
    for n in lg.bases(G):
        a = G.nodes[n]
        what = a.get("model") or a.get("path") or f"{a.get('arch', '')} {a.get('size', '')}".strip()
        row = {"base": n.removeprefix("base:"), "what": what}
        for t in traits:
            if t in a:
                v, lo, hi = lg.metric(G, n, t)
                row[t] = {"value": v, "ci": [lo, hi] if lo is not None else None,
                          "valid": a.get(f"{t}_valid"), "measurable": lg.measurable(a, t)}
        rows.append(row)
    return rows


def by_generation(G: nx.DiGraph, trait: str) -> list[dict]:
    """Every group at every generation: mean and interval, and the lift over its control with its
    test (``compare``): the generation-by-generation table of the report."""
    grp, ctrl = groups(G), controls(G)
    cg = _control_groups(G, grp)
    rows = []
    for name, ls in grp.items():
        gs, m, lo, hi = series(G, ls, trait)
        for i, g in enumerate(gs):
            row = {"lineage": name, "generation": g, "n": sum(value(G, l, trait, g) is not None for l in ls),
                   "mean": float(m[i]), "ci": [float(lo[i]), float(hi[i])]}
            if name in cg:
                row.update(control=cg[name], **compare(G, ls, trait, g, ctrl))
            rows.append(row)
    with_holm(rows)
    return rows


# ----------------------------------------------------------------- the page
def _colour(x: float) -> str:
    from matplotlib import colormaps
    r, g, b, _ = colormaps["viridis"](max(0.0, min(1.0, x)))
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def interactive_svg(G: nx.DiGraph, trait: str) -> tuple[str, dict]:
    """An SVG of the same layout (no library) and the data its script needs."""
    pos, rows = layout(G)
    labels = [_row_label(G, l) for l in rows]
    sx, sy, top = 70, 34, 40
    left = 20 + 7 * max((len(t) for t in labels), default=10)  # room for the longest row label
    X = {n: left + (x + 1.5) * sx for n, (x, y) in pos.items()}
    Y = {n: top + (-y) * sy for n, (x, y) in pos.items()}
    width = int(max(X.values(), default=0) + 2 * sx)
    height = int(max(Y.values(), default=0) + sy)
    parts = [f'<svg id="graph" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    reals = sorted(n for n, a in G.nodes(data=True) if a.get("stage") == "real")
    for i, label in enumerate(labels + [f"{n} (world data)" for n in reals]):
        parts.append(f'<text class="row" x="{left - 8}" y="{top + i * sy + 4}" text-anchor="end">{html.escape(label)}</text>')
    gens = sorted({a["generation"] for _, a in G.nodes(data=True) if a.get("kind") == "model"})
    for g in gens:
        parts.append(f'<text class="row" x="{left + (2 * g + 1.5) * sx:.1f}" y="{top - 22}" text-anchor="middle">gen {g}</text>')
    edges = drawn_edges(G, pos)
    for u, v, style in edges:
        colour, ls = EDGE_STYLE[style]
        dash = {"-": "", "--": ' stroke-dasharray="6,4"', ":": ' stroke-dasharray="2,3"'}[ls]
        parts.append(f'<line class="edge" data-u="{html.escape(u)}" data-v="{html.escape(v)}" x1="{X[u]:.1f}" y1="{Y[u]:.1f}" '
                     f'x2="{X[v]:.1f}" y2="{Y[v]:.1f}" stroke="{colour}"{dash}/>')
    info = {}
    for n in pos:
        a = attrs(G, n)
        keep = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in a.items()
                if isinstance(v, (int, float, str)) and not k.endswith("_units")}
        for m in a.get("metrics", []):
            if not lg.measurable(a, m):
                keep[m] = f"not measurable (valid {a[f'{m}_valid']:.2f})"
                keep.pop(f"{m}_ci_lo", None), keep.pop(f"{m}_ci_hi", None)
        info[n] = keep
        nid = html.escape(n)
        if a.get("kind") == "model":
            done = a.get("status") == "done" and trait in a
            fill = (_colour(a[trait]) if lg.measurable(a, trait) else "#c8c8c8") if done else "#ffffff"
            mis = a.get("misalignment", 0) if lg.measurable(a, "misalignment") else 0
            ring = "#d62728" if mis >= 0.5 else "#333333" if lg.measurable(a, "misalignment") else "#c8c8c8"
            parts.append(f'<circle class="node model" data-id="{nid}" cx="{X[n]:.1f}" cy="{Y[n]:.1f}" r="9" '
                         f'fill="{fill}" stroke="{ring}" stroke-width="{1 + 3 * mis:.1f}"/>')
        else:
            fill = "#2ca02c" if a.get("stage") == "real" else "#dddddd"
            parts.append(f'<rect class="node dataset" data-id="{nid}" x="{X[n] - 6:.1f}" y="{Y[n] - 6:.1f}" '
                         f'width="12" height="12" fill="{fill}" stroke="#777"/>')
    parts.append("</svg>")
    adj = {"up": {}, "down": {}}
    for u, v, _ in edges:
        adj["down"].setdefault(u, []).append(v)
        adj["up"].setdefault(v, []).append(u)
    return "\n".join(parts), {"nodes": info, "adj": adj, "models": [n for n in pos if attrs(G, n).get("kind") == "model"]}


SCRIPT = r"""
const data = JSON.parse(document.getElementById('graph-data').textContent);
const tip = document.getElementById('tip');
const shown = document.querySelectorAll('#graph .model').length;
if (shown !== data.models.length) { console.error('graph: ' + shown + ' of ' + data.models.length + ' model nodes drawn'); }
document.getElementById('count').textContent = shown + ' model nodes';
function reach(start, dir) {
  const seen = new Set([start]), todo = [start];
  while (todo.length) { const n = todo.pop(); for (const m of (data.adj[dir][n] || [])) if (!seen.has(m)) { seen.add(m); todo.push(m); } }
  return seen;
}
let selected = null;
function highlight(id) {
  const svg = document.getElementById('graph');
  if (id === null || id === selected) { selected = null; svg.classList.remove('focus');
    document.querySelectorAll('#graph .on').forEach(e => e.classList.remove('on')); return; }
  selected = id;
  const keep = new Set([...reach(id, 'up'), ...reach(id, 'down')]);
  svg.classList.add('focus');
  document.querySelectorAll('#graph .node').forEach(e => e.classList.toggle('on', keep.has(e.dataset.id)));
  document.querySelectorAll('#graph .edge').forEach(e => e.classList.toggle('on', keep.has(e.dataset.u) && keep.has(e.dataset.v)));
}
document.querySelectorAll('#graph .node').forEach(e => {
  e.addEventListener('mousemove', ev => {
    const a = data.nodes[e.dataset.id];
    tip.innerHTML = '<b>' + e.dataset.id + '</b><br>' + Object.entries(a).map(([k, v]) => k + ': ' + v).join('<br>');
    tip.style.display = 'block'; tip.style.left = (ev.pageX + 14) + 'px'; tip.style.top = (ev.pageY + 14) + 'px';
  });
  e.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  e.addEventListener('click', ev => { ev.stopPropagation(); highlight(e.dataset.id); });
});
document.getElementById('graph').addEventListener('click', () => highlight(null));
document.body.dataset.ready = '1';
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child { text-align: left; }
img { max-width: 100%; } .scroll { overflow: auto; border: 1px solid #ddd; }
#graph .edge { stroke-width: 1.2; opacity: 0.7; } #graph .row { font-size: 12px; }
#graph.focus .node:not(.on), #graph.focus .edge:not(.on) { opacity: 0.12; }
#graph .node { cursor: pointer; }
#tip { position: absolute; display: none; background: #fff; border: 1px solid #888; padding: 6px; font-size: 12px;
       max-width: 360px; box-shadow: 2px 2px 6px #aaa; pointer-events: none; }
.note { color: #666; font-size: 13px; }
"""


def save_png(fig, path: Path) -> str:
    """Save ``fig`` as a PNG file and return it as a data URI for the page."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    path.write_bytes(buf.getvalue())
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def report(run_dir: str | Path, log=print, tracker=None) -> Path:
    """Write RUN_DIR/report/ (index.html and its images); returns the page's path."""
    t0 = time.time()
    run_dir = Path(run_dir)
    G = load_run(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    traits = trait_names(G)
    main, why = lead_trait(G, traits) if traits else (None, "")
    figs = {}
    if main is None:
        raise EcosimError(f"{run_dir}: no model has been measured yet; nothing to report")
    fig = draw_graph(G, main)
    fig.savefig(out / "graph.svg", bbox_inches="tight")
    figs["graph"] = save_png(fig, out / "graph.png")
    rates = [t for t in traits if not t.endswith("_logodds")]  # log-odds are not rates in [0, 1]
    figs["traits"] = save_png(plot_metrics(G, rates, "trait rates by generation (band: 95% CI)", "rate"),
                          out / "traits.png")
    if len(rates) < len(traits):
        figs["logodds"] = save_png(plot_metrics(G, [t for t in traits if t not in rates], "likelihood readout: "
                                            "log-odds of the target among the options", "log-odds",
                                            unit_interval=False), out / "logodds.png")
    valid = [m for m in (f"{t}_valid" for t in traits) if any(m in G.nodes[n] for n in lg.models(G))]
    if valid:
        figs["valid"] = save_png(plot_metrics(G, valid, "valid-answer rates by generation", "rate"), out / "valid.png")
    capability = [m for m, k in metric_kinds(G).items() if k in ("capability", "drift")]
    figs["capability"] = save_png(plot_metrics(G, capability, "capability and drift from the base",
                                           "value", unit_interval=False), out / "capability.png")
    figs["datasets"] = save_png(plot_datasets(G), out / "datasets.png")
    rows = summary(G, main)
    gens = by_generation(G, main)
    svg, data = interactive_svg(G, main)
    n_models = len(lg.models(G, None))
    n_done = len(lg.models(G))
    status = "finished" if n_done == n_models else f"still running or interrupted: {n_done} of {n_models} models done"
    more = {t: summary(G, t) for t in traits if t != main}  # every other readout: its own table
    based = base_rows(G, traits)
    # the trait as the report reads it and, where measured, its share among the valid answers (a
    # student whose valid-answer rate falls under the floor still has one)
    defended = {t: r for t in (main, f"{main}_share") if (r := defenses.rows(G, t))}
    page = _page(G, run_dir, figs, rows, svg, data, main, status, more, gens, based, defended, why)
    (out / "index.html").write_text(page)
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    (out / "bases.json").write_text(json.dumps(based, indent=1))
    (out / "by_generation.json").write_text(json.dumps(gens, indent=1))
    if defended:
        (out / "defenses.json").write_text(json.dumps(defended, indent=1))
    if tracker is not None:
        tracker.log_report(out, rows, page)
    log(f"report: {out / 'index.html'} ({time.time() - t0:.1f} s)")
    return out / "index.html"


def _table(rows) -> str:
    e = html.escape
    head = ["lineage", "runs", "gen 0", "final gen", "final [95% CI]", "interval", "control", "lift vs control",
            "p (one-sided)", "p (Holm)", "test"]
    body = []
    for r in rows:
        final = (with_ci(r["final"], r["final_ci"]) if r["measurable"]
                 else "not measurable")
        body.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in (
            r["lineage"], r["runs"], fmt(r["gen0"]) if r.get("gen0_measurable", True) else "not measurable",
            r["final_generation"], final, r["interval"],
            r["control"] or "–", fmt(r["lift"]) if r["lift"] is None else f"{r['lift']:+.3f}", fmt(r["p_value"]),
            fmt(r.get("p_holm")), r["test"] or "–")) + "</tr>")
    return (f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>"
            + _tests_note(rows))


def _tests_note(rows) -> str:
    """How many tests a table holds and what its adjusted p is."""
    k = n_tests([r.get("p_value") for r in rows])
    return (f"<p class='note'>This table holds {k} test{'s' if k != 1 else ''} (one-sided paired t); "
            f"p (Holm) is adjusted over {'them' if k != 1 else 'it'} (Holm's step-down, family-wise).</p>")


def _base_table(rows, traits) -> str:
    """The bases as they are: one row per base, a column per readout (value [95% CI], valid)."""
    e = html.escape

    def cell(r):
        if r is None:
            return "–"
        if not r["measurable"]:
            return f"not measurable (valid {r['valid']:.2f})"
        return with_ci(r["value"], r["ci"]) + (f" (valid {r['valid']:.2f})" if r["valid"] is not None else "")
    head = ["base", "model"] + traits
    body = ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in [r["base"], r["what"]] + [cell(r.get(t)) for t in traits])
            + "</tr>" for r in rows]
    return f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{''.join(body)}</table>"


def _generation_table(rows) -> str:
    """The by-generation table: one row per group and generation."""
    e = html.escape
    head = ["lineage", "gen", "n", "mean [95% CI]", "control", "lift", "p (one-sided)", "p (Holm)", "test"]
    body = ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in (
        r["lineage"], r["generation"], r["n"], with_ci(r["mean"], r["ci"]),
        r.get("control") or "–", "–" if r.get("lift") is None else f"{r['lift']:+.3f}", fmt(r.get("p_value")),
        fmt(r.get("p_holm")), r.get("test") or "–")) + "</tr>" for r in rows]
    return (f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>"
            + _tests_note(rows))


def _page(G, run_dir, figs, rows, svg, data, trait, status, more=None, gens=(), based=(), defended=(), why="") -> str:
    e = html.escape
    payload = json.dumps(data).replace("</", "<\\/")  # no "</script>" inside the script
    no_control = [r["lineage"] for r in rows if r["control"] is None and not r["lineage"].endswith("_control")]
    pairs = size_pairs(G)
    unequal = [f"{t} {a} vs {c} {b}" for t, c, a, b in pairs if a != b]
    sizes = (f"<p class='note'>Matched training sets: {len(pairs) - len(unequal)} of {len(pairs)} treated students "
             f"train on as many examples as their control's" + (f"; unequal: {e('; '.join(unequal))}" if unequal else "")
             + ".</p>") if pairs else ""
    note = (f"<p class='note'>No matched control for: {e(', '.join(no_control))} (the comparison is missing "
            "for them; compare with another lineage's control only with care).</p>") if no_control else ""
    kept = kept_by_channel(G)
    imgs = "".join(f"<h2>{e(t)}</h2><img alt='{k}' src='{figs[k]}'>" for k, t in (
        ("traits", "Trait rates"), ("logodds", "Likelihood readout (log-odds)"), ("valid", "Valid-answer rates"),
        ("capability", "Capability and drift"),
        ("datasets", "Datasets: kept fractions and rejections")) if k in figs)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ecosim report: {e(G.graph.get('scenario', ''))}</title>
<style>{STYLE}</style></head><body>
<h1>ecosim report: {e(G.graph.get('scenario', ''))}</h1>
<p class="note">{e(str(run_dir))} · {e(status)} · colour = {e(trait)} · written {time.strftime('%Y-%m-%d %H:%M')}</p>
{f"<p class='note'>{e(why)}</p>" if why else ""}
<h2>Summary ({e(trait)})</h2>
{_table(rows)}{note}{sizes}
<p class="note">Intervals over seeds (or replicas) where a lineage has several; with one run, the
model's own interval over the evaluation questions, which measures sampling noise only. Rates
among valid answers are "not measurable" where under {lg.VALID_FLOOR:g} of the answers are valid.</p>
{f"<h2>Bases as they are (no trait, no training)</h2>{_base_table(based, [trait, *(more or {})])}" if based else ""}
<h2>By generation ({e(trait)})</h2>
{_generation_table(gens)}
{"".join(defenses.table_html(r, t) for t, r in (defended or {}).items())}
{''.join(f"<h2>Summary ({e(t)})</h2>{_table(r)}" for t, r in (more or {}).items())}
<h2>Lineage graph (interactive: hover a node for its metrics, click it to highlight its ancestors and descendants)</h2>
<p class="note" id="count"></p>
<div class="scroll">{svg}</div>
<h2>Lineage graph (static)</h2><img alt="graph" src="{figs['graph']}">
{imgs}
{f"<h2>Kept fractions per channel</h2>{_kept_table(kept)}" if kept else ""}
<div id="tip"></div>
<script type="application/json" id="graph-data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""
