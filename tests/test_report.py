"""The report: built on a graph made by the engine's own bookkeeping (5 lineages x 8 generations,
metrics filled in), so no model is trained here. Checks speed, label overlap in the static
drawing, the summary's statistics, and the page in headless Chromium."""
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from ecosim.store import graph as lg
from ecosim.cli import main
from ecosim.engine.runner import plan_graph, record_model, record_write
from ecosim.engine.tasks import Task
from ecosim.analysis.report import draw_graph, report, summary, text_overlaps
from ecosim.engine.plan import expand
from ecosim.engine.schema import load_scenario

SCEN = """
name: five_by_eight
generations: 7
bases:
  main: {arch: gpt2, seed: 0}
  other: {arch: gpt2, seed: 1}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  treated_long_name: {trait: owl}
  mismatched_lineage: {trait: owl, init: other, control: false}
  neutral_a: {control: false}
  neutral_b: {control: false}
data: {real_share: 0.25}
"""


def fake_run(tmp_path: Path, done_generations: int = 7) -> Path:
    """A run directory whose graph went through the engine's recording code with made-up results."""
    p = tmp_path / "s.yaml"
    p.write_text(SCEN)
    plan = expand(load_scenario(str(p)))
    G = plan_graph(plan)
    rng = np.random.default_rng(0)
    for g in range(done_generations + 1):
        for name in plan.lineages:
            treated = plan.lineages[name].trait is not None
            rate = 0.9 * 0.7 ** g + 0.08 if treated and plan.lineages[name].init == "base" else 0.08
            units = list(np.clip(rate + rng.normal(0, 0.05, 22), 0, 1))
            metrics = {"owl": (float(np.mean(units)), float(np.mean(units)) - 0.03, float(np.mean(units)) + 0.03, units),
                       "owl_valid": (0.97, None, None), "misalignment": (0.05 + 0.1 * treated, 0.0, 0.2),
                       "misalignment_valid": (0.9, None, None), "heldout_loss": (2.0 + 0.01 * g, None, None),
                       "drift_kl": (0.01 * g, None, None)}
            if g == 0:
                record_model(G, plan, Task("origin", name, 0), {"metrics": metrics, "seconds": 1.0, "pid": 1})
            else:
                t = Task("train", name, g, init={"base": plan.init_base(name, g)},
                         sources=[(("write", e.src, g - 1, "numbers"), 0, 1.0, e) for e in plan.parents[name]])
                record_model(G, plan, t, {"metrics": metrics, "seconds": 1.0, "pid": 1,
                                          "train_set": {"size": 100, "real": 25, "real_share": 0.25}})
            if g < plan.scenario.generations:
                w = Task("write", name, g, "numbers", datasets=[f"{name}/g{g}/numbers/kept"])
                record_write(G, w, [([], {"total": 100, "kept": 70, "kept_fraction": 0.7,
                                          "rejected": {"format": 20, "trait word": 10}, "seconds": 1.0})])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lg.save(G, run_dir)
    return run_dir


def test_report_is_fast_and_complete(tmp_path):
    run_dir = fake_run(tmp_path)
    G = lg.load(run_dir)
    assert len(G) >= 60
    t0 = time.time()
    assert main(["report", str(run_dir)]) == 0
    seconds = time.time() - t0
    assert seconds <= 10, f"report took {seconds:.1f} s"
    out = run_dir / "report"
    for f in ("index.html", "graph.png", "graph.svg", "traits.png", "valid.png", "capability.png", "datasets.png"):
        assert (out / f).is_file(), f
    page = (out / "index.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page  # offline
    assert all(f'data-id="{n}"' in page for n in lg.models(G, None))


def test_static_graph_labels_do_not_overlap_at_5_lineages_by_8_generations(tmp_path):
    G = lg.load(fake_run(tmp_path))
    assert len({a["lineage"] for _, a in G.nodes(data=True) if a.get("kind") == "model"}) == 5
    assert max(a["generation"] for _, a in G.nodes(data=True) if a.get("kind") == "model") == 7
    assert text_overlaps(draw_graph(G, "owl")) == []


def test_summary_pairs_the_treated_lineage_with_its_control(tmp_path):
    rows = {r["lineage"]: r for r in summary(lg.load(fake_run(tmp_path)), "owl")}
    t = rows["treated_long_name"]
    assert t["control"] == "treated_long_name_control" and t["lift"] > 0
    # one run: its interval is over the questions (sampling), and no p-value poses as replication
    assert t["p_value"] is None and "no test of replication" in t["test"] and "sampling" in t["interval"]
    assert rows["mismatched_lineage"]["control"] is None  # no matched control: reported as missing


def test_report_on_a_run_still_in_progress(tmp_path):
    run_dir = fake_run(tmp_path, done_generations=3)
    page = report(run_dir, log=lambda m: None).read_text()
    assert "still running or interrupted" in page


def test_report_of_a_missing_run_is_one_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def chromium() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def test_report_in_headless_chromium(tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs it with apt-get; it could not here)")
    run_dir = fake_run(tmp_path)
    page = report(run_dir, log=lambda m: None)
    G = lg.load(run_dir)
    flags = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]
    r = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert 'data-ready="1"' in dom, "the page's script did not run to the end"
    drawn = set(re.findall(r'<circle class="node model" data-id="([^"]+)"', dom))
    assert drawn == set(lg.models(G, None))
    console = [l for l in r.stderr.splitlines() if "CONSOLE" in l]
    errors = [l for l in console if "Uncaught" in l or "graph:" in l or ":ERROR:" in l]
    assert not errors, errors
    shot = run_dir / "report" / "screenshot.png"
    r = subprocess.run(flags + ["--window-size=1400,1000", f"--screenshot={shot}", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]


def test_the_report_reads_metric_kinds_from_the_graph():
    """A substrate declares what its metrics are (METRICS); the run keeps that in the graph, and
    the report takes its trait rates and capability plot from it, not from names it knows."""
    from ecosim.analysis.report import metric_kinds, trait_names
    G = lg.new_graph("kinds")
    lg.add_model(G, "a/g0", status="done")
    lg.set_metrics(G, "a/g0", {"owl": (0.5, 0.4, 0.6), "owl_valid": (1.0, None, None),
                               "loss": (2.0, None, None), "kl": (0.1, None, None)})
    G.graph["metric_kinds"] = {"loss": "capability", "kl": "drift"}
    assert trait_names(G) == ["owl"]
    del G.graph["metric_kinds"]  # a run from before 0.2.0: the kinds every substrate had then
    assert metric_kinds(G)["heldout_loss"] == "capability" and sorted(trait_names(G)) == ["kl", "loss", "owl"]


def test_every_substrate_declares_its_metric_kinds():
    for name in ("world", "hf", "mlp"):
        sub = pytest.importorskip(f"ecosim.substrates.{name}.substrate")
        assert set(sub.METRICS.values()) <= {"trait", "capability", "drift"}
        assert {"heldout_loss", "drift_kl"} <= set(sub.METRICS)


def test_trait_names_lead_with_the_trait_then_its_readouts():
    """A world run measures <trait>_share and _logodds for misalignment too: the report's main
    trait stays the scenario's trait (misalignment last), each followed by its readouts (a real
    model's _answer_logodds, read without an answer start, after those read with one)."""
    import networkx as nx
    from ecosim.analysis.report import trait_names
    G = nx.DiGraph(metric_kinds={"misalignment": "trait", "heldout_loss": "capability"})
    G.add_node("a/g0", kind="model", status="done", metrics=[
        "misalignment_logodds", "misalignment_share", "misalignment", "owl_answer_logodds", "owl_share", "owl",
        "owl_logodds", "owl_valid", "heldout_loss"])
    assert trait_names(G) == ["owl", "owl_logodds", "owl_share", "owl_answer_logodds", "misalignment",
                              "misalignment_logodds", "misalignment_share"]


def test_report_leads_with_the_likelihood_readout_when_the_sampled_one_cannot_be_read():
    import networkx as nx
    from ecosim.analysis.report import lead_trait
    G = nx.DiGraph()
    for g, valid in ((0, 0.9), (1, 0.05), (2, 0.1)):
        G.add_node(f"a/g{g}", kind="model", status="done", generation=g, owl=0.0, owl_valid=valid, owl_logodds=-3.0)
    traits = ["owl", "owl_logodds", "owl_share", "misalignment"]
    t, why = lead_trait(G, traits)
    assert t == "owl_logodds" and "not measurable for any student" in why
    G.nodes["a/g2"]["owl_valid"] = 0.7  # one student can be read: the sampled rate leads
    assert lead_trait(G, traits) == ("owl", "")
    assert lead_trait(G, ["owl", "misalignment"])[0] == "owl"  # no likelihood readout to lead with
