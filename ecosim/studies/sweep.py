"""Sweeps: a grid of scenario settings. ``sweep: {key path: [values]}`` in a scenario (or
``ecosim run NAME --sweep KEY=V1,V2``) makes one cell per combination of values; every cell is
an ordinary run (all its ``seeds`` in one run directory), the cells run one after another
through one Ray instance, and one report compares them: the measured quantity at the last
generation against each knob, with intervals over seeds.

Sweep directory ``runs/<scenario>-sweep-<timestamp>/``: sweep.yaml (the resolved scenario with
its grid), sweep.json (cells and their run directories), one run directory per cell,
metrics.csv (every cell's rows with a column per knob) and report/ (sweep.png, index.html,
summary.json)."""
from __future__ import annotations

import csv
import dataclasses
import html
import json
import math
import re
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ecosim.errors import EcosimError
from ecosim.engine.grid import cell_scenario, cells
from ecosim.store import graph as lg


def cell_dir(i: int, values: dict) -> str:
    """cell00-real_share=0.25-steps=300: the last part of each key and its value."""
    parts = [f"{k.split('.')[-1]}={v}" for k, v in values.items()]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", f"cell{i:02d}-" + "-".join(parts))[:120]


def run(sc=None, root: str | Path | None = None, resume: bool = False, log=print) -> dict:
    """Run every cell of ``sc``'s grid (``resume``: finish the sweep in ``root``: finished cells
    are kept, an interrupted one resumed). Returns sweep.json's data."""
    from ecosim.engine.pool import start_ray
    from ecosim.engine.runner import new_run_dir, run as run_one
    from ecosim.engine.schema import load_saved
    t0 = time.time()
    if resume:
        root = Path(root)
        sc = load_saved(root, "sweep.yaml", "sweep directory")
    else:
        root = Path(root) if root else new_run_dir(sc, "-sweep")
        root.mkdir(parents=True, exist_ok=False)
        (root / "sweep.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(sc)))
    grid = cells(sc.sweep)
    info = {"scenario": sc.name, "grid": sc.sweep, "seeds": sc.seeds, "dir": str(root),
            "cells": [{"values": v, "run_dir": cell_dir(i, v)} for i, v in enumerate(grid)]}
    (root / "sweep.json").write_text(json.dumps(info, indent=1))
    log(f"{sc.name}: sweep of {len(grid)} cells x {sc.seeds} seed(s) over {', '.join(sc.sweep)}; {root}")
    started = start_ray(sc.compute) if sc.compute.ray else False  # one Ray instance for every cell
    try:
        for i, (values, c) in enumerate(zip(grid, info["cells"])):
            d = root / c["run_dir"]
            log(f"sweep cell {i + 1}/{len(grid)}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
            if (d / "run.json").exists():
                log(f"  finished earlier: {d}")
                c["seconds"] = json.loads((d / "run.json").read_text())["seconds"]
                continue
            cell = dataclasses.replace(cell_scenario(sc, values), report=True)
            res = run_one(run_dir=d, resume=True, log=log) if (d / "config.yaml").exists() else \
                run_one(cell, run_dir=d, log=log)
            c["seconds"] = res["seconds"]
    finally:
        if started:
            import ray
            ray.shutdown()
    info["seconds"] = round(time.time() - t0, 1)
    (root / "sweep.json").write_text(json.dumps(info, indent=1))
    report(root, log=log)
    log(f"{sc.name}: sweep finished in {info['seconds']:.0f} s; {root}")
    return info


# ----------------------------------------------------------------- reading and comparing cells
def load(root: Path) -> tuple[dict, list[tuple[dict, Path]]]:
    root = Path(root)
    if not (root / "sweep.json").is_file():
        raise EcosimError(f"{root}: not a sweep directory (no sweep.json)")
    info = json.loads((root / "sweep.json").read_text())
    return info, [(c["values"], root / c["run_dir"]) for c in info["cells"]]


def write_metrics(root: Path) -> Path:
    """Every finished cell's metrics.csv rows, with one column per knob in front."""
    info, runs = load(root)
    keys = list(info["grid"])
    out = Path(root) / "metrics.csv"
    with open(out, "w", newline="") as f:
        w = None
        for values, d in runs:
            if not (d / "metrics.csv").is_file():
                continue
            with open(d / "metrics.csv") as g:
                for row in csv.DictReader(g):
                    if w is None:
                        w = csv.DictWriter(f, keys + ["run_dir"] + list(row))
                        w.writeheader()
                    w.writerow({**{k: values[k] for k in keys}, "run_dir": d.name, **row})
    return out


def compare_cells(root: Path, trait: str | None = None, readouts: tuple = ()) -> list[dict]:
    """Per cell and treated lineage: the trait at the last generation (treated and control, mean
    and interval over seeds), the lift over control with its paired test (``p_holm``: Holm-adjusted
    over every row of the sweep with that trait), and persistence (``persistence``). ``readouts``:
    also rows for ``<trait><readout>`` (e.g. "_share") in the cells that measured it."""
    from ecosim.analysis.report import compare, controls, groups, load_run, series, trait_names, with_holm
    info, runs = load(root)
    rows = []
    for values, d in runs:
        if not (d / "graph.json").is_file():
            continue
        G = load_run(d)
        main = trait or (trait_names(G) or [None])[0]
        if main is None:
            continue
        grp, ctrl = groups(G), controls(G)
        last = max(G.nodes[n]["generation"] for n in lg.models(G))
        measured = {m for n in lg.models(G) for m in G.nodes[n].get("metrics", [])}
        metrics = [main] + [m for m in (f"{main}{r}" for r in readouts) if m in measured]
        for t, (name, ls) in ((t, g) for t in metrics for g in grp.items()):
            if ls[0] not in ctrl:
                continue
            c_ls = [ctrl[l] for l in ls]
            _, m, lo, hi = _at(series(G, ls, t), last)
            _, cm, clo, chi = _at(series(G, c_ls, t), last)
            cmp = compare(G, ls, t, last, ctrl)
            pm, plo, phi, pn = persistence([(_lift_of(G, l, ctrl[l], t, last), _lift_of(G, l, ctrl[l], t, 0))
                                            for l in ls])
            rows.append({**values, "cell": d.name, "lineage": name, "trait": t, "generation": last,
                         "seeds": len(ls), "treated": m, "treated_ci": [lo, hi], "control": cm,
                         "control_ci": [clo, chi], "lift": cmp.get("lift"), "lift_ci": cmp.get("lift_ci"),
                         "p_value": cmp.get("p_value"), "test": cmp.get("test"),
                         "persistence": pm, "persistence_ci": [plo, phi], "persistence_seeds": pn})
    for t in dict.fromkeys(r["trait"] for r in rows):  # one family of tests per trait
        with_holm([r for r in rows if r["trait"] == t])
    return rows


PERSISTENCE = ("persistence = mean lift over control at the last generation / mean lift at generation 0, over "
               "every seed where both are measurable; 95% bootstrap interval over seeds")


def persistence(lifts: list[tuple[float | None, float | None]]) -> tuple:
    """(ratio, lo, hi, seeds) from each seed's (last-generation lift, generation-0 lift): the
    ratio of the mean lifts over every seed where both are measurable (none dropped for a
    generation-0 lift that is not positive, which would bias it upward) and a percentile
    bootstrap interval over those seeds (``ratio_of_means_ci``, seeded: deterministic). None
    where no seed has both, or the mean generation-0 lift is not positive (no lift to keep)."""
    from ecosim.analysis.stats import ratio_of_means_ci
    pairs = [(a, b) for a, b in lifts if a is not None and b is not None]
    if not pairs:
        return None, None, None, 0
    r, lo, hi = ratio_of_means_ci([a for a, _ in pairs], [b for _, b in pairs])
    def f(x):
        return None if math.isnan(x) else x
    return f(r), f(lo), f(hi), len(pairs)


def _at(s, g):
    gs, m, lo, hi = s
    if g in gs:
        i = gs.index(g)
        return g, float(m[i]), float(lo[i]), float(hi[i])
    return g, None, None, None


def _lift_of(G, l, c, t, g):
    """One seed's lift of lineage l over its control c at generation g (None: not measurable)."""
    from ecosim.analysis.report import value
    a, b = value(G, l, t, g), value(G, c, t, g)
    return None if a is None or b is None else a - b


def report(root: str | Path, log=print) -> Path:
    """ROOT/report/: the measured quantity against each knob (sweep.png), a table, metrics.csv."""
    from ecosim.analysis.report import STYLE, fmt, save_png, with_ci
    from ecosim.analysis.stats import n_tests
    root = Path(root)
    info, _ = load(root)
    write_metrics(root)
    # the trait's likelihood share too, where measured: it has no valid-answer floor, so a cell
    # whose students stop naming an option still has a lift and a persistence
    every = compare_cells(root, readouts=("_share",))
    out = root / "report"
    out.mkdir(exist_ok=True)
    if not every:
        raise EcosimError(f"{root}: no cell has a treated lineage with a control measured yet; nothing to compare")
    rows = [r for r in every if r["trait"] == every[0]["trait"]]
    share = [r for r in every if r["trait"] != rows[0]["trait"]]
    (out / "summary.json").write_text(json.dumps(rows + share, indent=1))
    img = save_png(plot(rows, list(info["grid"])), out / "sweep.png")
    img_share = save_png(plot(share, list(info["grid"])), out / "sweep_share.png") if share else None
    e = html.escape
    keys = list(info["grid"])
    head = keys + ["lineage", "gen", "seeds", "treated [95% CI]", "control [95% CI]", "lift [95% CI]", "p (one-sided)",
                   "p (Holm)", "persistence: mean last-gen lift / mean gen-0 lift [95% bootstrap CI]"]

    def table(rows):
        return "".join("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in (
            *[r[k] for k in keys], r["lineage"], r["generation"], r["seeds"], with_ci(r["treated"], r["treated_ci"]),
            with_ci(r["control"], r["control_ci"]), with_ci(r["lift"], r["lift_ci"]), fmt(r["p_value"]),
            fmt(r.get("p_holm")), with_ci(r["persistence"], r["persistence_ci"]))) + "</tr>" for r in rows)
    body = table(rows)
    more = (f"<h2>{e(share[0]['trait'])} (likelihood share; no valid-answer floor)</h2><img alt='share' src='{img_share}'>"
            f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{table(share)}</table>") if share else ""
    k = n_tests([r["p_value"] for r in rows])
    cells_html = "".join(f"<li><a href='../{e(c['run_dir'])}/report/index.html'>{e(c['run_dir'])}</a></li>"
                         for c in info["cells"])
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ecosim sweep: {e(info['scenario'])}</title><style>{STYLE}</style></head><body>
<h1>ecosim sweep: {e(info['scenario'])}</h1>
<p class="note">{e(str(root))} · {len(info['cells'])} cells x {info['seeds']} seed(s) · intervals over seeds ·
{e(PERSISTENCE)} · {k} test(s) in the table, p (Holm) adjusted over them · written {time.strftime('%Y-%m-%d %H:%M')}</p>
<img alt="sweep" src="{img}">
<h2>Cells</h2>
<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{body}</table>
{more}
<h2>Each cell's own report</h2><ul>{cells_html}</ul>
</body></html>
"""
    (out / "index.html").write_text(page)
    log(f"sweep report: {out / 'index.html'}")
    return out / "index.html"


def plot(rows: list[dict], keys: list[str]):
    """Three panels against the first knob (one line per treated lineage and setting of the other
    knobs): the trait at the last generation (treated solid, control dashed), the lift over
    control, and persistence; error bars are 95% intervals over seeds."""
    from ecosim.analysis.report import pyplot
    plt = pyplot()
    x_key = keys[0]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    lines: dict[tuple, list[dict]] = {}
    for r in rows:
        lines.setdefault((r["lineage"],) + tuple(r[k] for k in keys[1:]), []).append(r)
    numeric = all(isinstance(r[x_key], (int, float)) and not isinstance(r[x_key], bool) for r in rows)
    ticks = sorted({r[x_key] for r in rows}, key=lambda v: (v if numeric else str(v)))
    pos = (lambda v: v) if numeric else (lambda v: ticks.index(v))  # noqa: E731
    for i, (key, rs) in enumerate(sorted(lines.items(), key=lambda kv: str(kv[0]))):
        rs = sorted(rs, key=lambda r: ticks.index(r[x_key]))
        label = key[0] + "".join(f", {k.split('.')[-1]}={v}" for k, v in zip(keys[1:], key[1:]))
        colour = f"C{i % 10}"
        for ax, (what, ls, lab) in ((axes[0], ("treated", "-", label)), (axes[0], ("control", "--", None)),
                                    (axes[1], ("lift", "-", None)), (axes[2], ("persistence", "-", None))):
            pts = [(pos(r[x_key]), r[what], r.get(f"{what}_ci")) for r in rs if r[what] is not None]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            err = np.array([[y - (c[0] if c and c[0] is not None else y) for _, y, c in pts],
                            [(c[1] if c and c[1] is not None else y) - y for _, y, c in pts]])
            ax.errorbar(xs, ys, yerr=np.clip(err, 0, None), color=colour, ls=ls, marker="o", ms=4, capsize=3,
                        label=lab)
    names = {"treated": "trait at the last generation (control dashed)", "lift": "lift over control",
             "persistence": "persistence (mean last-gen lift / mean gen-0 lift, bootstrap CI)"}
    for ax, what in zip(axes, ("treated", "lift", "persistence")):
        ax.set_title(names[what], fontsize=10)
        ax.set_xlabel(x_key)
        if not numeric:
            ax.set_xticks(range(len(ticks)), [str(t) for t in ticks])
        ax.grid(alpha=0.3)
        if what != "treated":
            ax.axhline(0, color="#888888", lw=0.8)
    axes[0].set_ylabel(rows[0]["trait"])
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"sweep over {', '.join(keys)}: bars are 95% intervals over seeds", fontsize=11)
    fig.tight_layout()
    return fig
