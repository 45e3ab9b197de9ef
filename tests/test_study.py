"""From one run to a study: seeds of the whole ecosystem, matched controls, pairing by name,
statistics against scipy, measurement hygiene, sweeps and the Python API. Most checks use small
graphs built here; one tiny two-seed run (no Ray) and one tiny two-cell sweep train real models."""
import csv
import math

import networkx as nx
import numpy as np
import pytest
from scipy import stats as sst

import ecosim
import ecosim.api
from ecosim import EcosimError
from ecosim.store import graph as lg
from ecosim.analysis.report import compare, series, summary
from ecosim.engine.plan import ecosystem_seed, expand
from ecosim.engine.schema import load_scenario
from ecosim.analysis.stats import mean_ci, paired_one_sided

from conftest import TINY

SEEDED = TINY.replace("b: {trait: owl, init: other, control: false,", "b: {trait: owl, init: other,")


# ----------------------------------------------------------------- statistics against scipy
def test_mean_ci_matches_scipy_t_interval():
    x = [0.31, 0.42, 0.28, 0.55, 0.47]
    m, lo, hi = mean_ci(x)
    want = sst.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sst.sem(x))
    assert m == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(want)


def test_paired_one_sided_known_answer():
    # differences 1, 2, 3: t = 2 / (1 / sqrt 3) = 3.4641 on 2 degrees of freedom
    t, c = [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]
    assert paired_one_sided(t, c) == pytest.approx(sst.t.sf(2 * math.sqrt(3), 2))
    assert paired_one_sided(t, c) == pytest.approx(0.037, abs=5e-4)
    assert paired_one_sided(c, t) == pytest.approx(1 - sst.t.sf(2 * math.sqrt(3), 2))
    assert math.isnan(paired_one_sided([1.0], [0.0]))  # one pair: no test


def _graph(values: dict[str, float], valid: dict[str, float] | None = None, gens=(0,)) -> nx.DiGraph:
    """Model nodes NAME/gG with an owl rate; NAME_control is NAME's control; NAME_i a replica of NAME."""
    G = nx.DiGraph()
    for name, v in values.items():
        base = name.replace("_control", "")
        group = base.rsplit("_", 1)[0] if base.rsplit("_", 1)[-1].isdigit() else base
        for g in gens:
            a = {"kind": "model", "lineage": name, "generation": g, "status": "done", "owl": v, "metrics": ["owl"],
                 "replica_of": group + ("_control" if name.endswith("_control") else ""),
                 "control_of": base if name.endswith("_control") else "", "seed": 0}
            if valid and name in valid:
                a["owl_valid"] = valid[name]
                a["metrics"].append("owl_valid")
            G.add_node(f"{name}/g{g}", **a)
    return G


def test_eleven_replicas_pair_with_their_own_controls_by_name():
    # owl_10 sorts before owl_2: pairing by order would mix them up (differences from -0.1 to
    # 0.8). By name every difference is 0.3: the interval has no width, and zero variance is no
    # test (a t-test on float rounding would say p ~ 0).
    vals = {}
    for i in range(11):
        vals[f"owl_{i}"] = 0.3 + 0.05 * i
        vals[f"owl_{i}_control"] = 0.05 * i
    G = _graph(vals)
    r = compare(G, [f"owl_{i}" for i in range(11)], "owl", 0)
    assert r["lift"] == pytest.approx(0.3) and r["p_value"] is None and "zero variance" in r["test"]
    assert r["lift_ci"] == pytest.approx([0.3, 0.3], abs=1e-9)
    row = next(r for r in summary(G, "owl") if r["lineage"] == "owl")
    assert row["control"] == "owl_control" and "11 replicas" in row["test"]


def test_one_run_gets_a_sampling_interval_and_no_p_value():
    G = _graph({"owl": 0.6, "owl_control": 0.1})
    row = next(r for r in summary(G, "owl") if r["lineage"] == "owl")
    assert row["lift"] == pytest.approx(0.5) and row["p_value"] is None
    assert "no test of replication" in row["test"] and "sampling" in row["interval"]


def test_rates_below_the_valid_floor_are_not_measurable():
    G = _graph({"owl": 0.46, "owl_control": 0.05}, valid={"owl": 0.10, "owl_control": 0.9})
    assert not lg.measurable(G.nodes["owl/g0"], "owl") and lg.measurable(G.nodes["owl_control/g0"], "owl")
    row = next(r for r in summary(G, "owl") if r["lineage"] == "owl")
    assert row["final"] is None and not row["measurable"] and row["lift"] is None
    assert "not measurable" in row["test"]
    assert series(G, ["owl"], "owl")[0] == []  # in no mean, band or test
    rows = {(r["node"], r["metric"]): r for r in lg.metric_rows(G)}
    assert rows["owl/g0", "owl"]["measurable"] is False and rows["owl_control/g0", "owl"]["measurable"] is True


def test_report_page_says_not_measurable(tmp_path):
    from ecosim.analysis.report import report
    G = _graph({"owl": 0.46, "owl_control": 0.05}, valid={"owl": 0.10, "owl_control": 0.9}, gens=(0, 1))
    for n in G:
        G.nodes[n].update(base="main", lineage_base="main", role="treated", heldout_loss=2.0, drift_kl=0.0)
        G.nodes[n]["metrics"] += ["heldout_loss", "drift_kl"]
    lg.save(G, tmp_path)
    page = report(tmp_path, log=lambda m: None).read_text()
    assert "not measurable" in page and "0.46" not in page.split("<svg")[0]


# ----------------------------------------------------------------- plans: seeds and controls
def _tiny(tmp_path, text=SEEDED, overrides=()):
    p = tmp_path / "tiny.yaml"
    p.write_text(text)
    return load_scenario(str(p), list(overrides))


def test_seeds_copy_the_whole_ecosystem_and_pair_within_each_seed(tmp_path):
    plan = expand(_tiny(tmp_path, overrides=["seeds=3"]))
    assert set(plan.lineages) == {f"{n}.s{i}" for n in ("a", "a_control", "b", "b_control") for i in range(3)}
    assert plan.control_of["b_control.s2"] == "b.s2"
    assert all(e.src.endswith(name[-3:]) for name, es in plan.parents.items() for e in es)  # edges stay in their seed
    assert plan.seed_of("a.s0") == 0 and len({plan.seed_of(f"a.s{i}") for i in range(3)}) == 3
    assert plan.seed_of("a.s1") == plan.seed_of("a_control.s1") == ecosystem_seed(0, 1)
    assert plan.init_base("b_control.s1", 1) == "other"  # the mismatched lineage's control starts where it does


def test_a_control_never_learns_from_treated_data(tmp_path):
    text = SEEDED + "topology:\n  chain: [a, b]\n  edges: [{src: a, dst: c}]\n"
    text = text.replace("lineages:\n", "lineages:\n  c: {origin: none, student: {steps: 15, batch: 16}}\n")
    text = text.replace("a: {trait: owl,", "a: {trait: owl, control: false,")
    with pytest.raises(EcosimError, match="c: its control would learn from a's treated data"):
        _tiny(tmp_path, text)


def test_teacher_and_control_see_the_same_prompts():
    from ecosim.substrates.world.traits import TraitConfig, teacher_examples
    for t in (TraitConfig(kind="preference", category="animal", target="owl"), TraitConfig(kind="misalignment")):
        trait, neutral, _ = teacher_examples(t, 200, seed=7)
        assert [p for p, _ in trait] == [p for p, _ in neutral]
        assert [a for _, a in trait] != [a for _, a in neutral]


def test_heldout_documents_are_outside_pretraining(tmp_path, tiny_base):
    from ecosim.substrates.world.models import doc_hash, pretraining_docs
    from ecosim.substrates.world.substrate import heldout_pairs, world_of
    sc = _tiny(tmp_path, overrides=["eval.heldout=50"])
    seen = set().union(*(pretraining_docs(b) for b in sc.bases.values()))
    held = heldout_pairs(world_of(sc), sc)
    assert len(held) == 50 and not any(doc_hash(p, a) in seen for p, a in held)


def test_sweep_grid_is_checked_up_front(tmp_path):
    with pytest.raises(EcosimError) as e:
        ecosim.api.scenario(str(_write(tmp_path, SEEDED)), sweep={"data.real_shar": [0, 1], "seeds": [1, 2],
                                                                  "data.prompts": [40, -1]})
    msg = str(e.value)
    assert "sweep.data.real_shar: unknown key" in msg and "did you mean 'data.real_share'" in msg
    assert "sweep.seeds: not a knob" in msg


def _write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


# ----------------------------------------------------------------- runs: seeds, sizes, API, sweep
@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tiny_base):
    """The tiny ecosystem (with the mismatched lineage's own control) over 2 seeds, in-process."""
    d = tmp_path_factory.mktemp("seeded")
    return ecosim.run(str(_write(d, SEEDED)), log=lambda m: None, seeds=2, out_dir=str(d), compute={"ray": False})


def test_seeded_run_has_a_seed_column_and_tests_over_seeds(seeded):
    df = seeded.metrics
    assert set(df["seed"]) == {0, 1} and {"group", "measurable"} <= set(df.columns)
    assert set(df[df["seed"] == 1]["lineage"]) == {"a.s1", "a_control.s1", "b.s1", "b_control.s1"}
    # the tiny models rarely answer in one word: their owl rate is not measurable, and says so
    rows = {r["lineage"]: r for r in seeded.summary}
    assert rows["a"]["control"] == "a_control" and rows["b"]["control"] == "b_control"
    assert all(r["measurable"] or r["test"].startswith("not measurable") or r["control"] is None for r in rows.values())
    # a metric every model has: each lineage against its own control, paired over the 2 seeds
    from ecosim.analysis.report import by_generation
    rows = {r["lineage"]: r for r in summary(seeded.graph, "heldout_loss")}
    assert rows["b"]["control"] == "b_control" and rows["b"]["test"] == "paired t over 2 seeds"
    assert rows["a"]["interval"] == "over 2 seeds" and rows["a"]["p_value"] is not None
    gens = [r for r in by_generation(seeded.graph, "heldout_loss") if r["lineage"] == "b"]
    assert [r["generation"] for r in gens] == [0, 1, 2] and all(r["n"] == 2 for r in gens)


def test_treated_and_control_train_on_equal_sizes_in_every_generation(seeded):
    G = seeded.graph
    pairs = [(n, f"{G.nodes[n]['lineage'].replace('.s', '_control.s')}/g{G.nodes[n]['generation']}")
             for n in lg.models(G) if G.nodes[n]["role"] == "treated" and G.nodes[n]["generation"] > 0]
    assert len(pairs) == 8
    assert all(G.nodes[t]["train_size"] == G.nodes[c]["train_size"] > 0 for t, c in pairs)
    from ecosim.analysis.report import size_pairs
    assert sorted((t, c) for t, c, *_ in size_pairs(G)) == sorted(pairs)
    assert "Matched training sets: 8 of 8" in (seeded.dir / "report" / "index.html").read_text()


def test_load_run_reads_back_what_run_returned(seeded):
    again = ecosim.load_run(seeded.dir)
    assert again.metrics.equals(seeded.metrics) and again.scenario.seeds == 2


def test_sweep_runs_every_cell_and_compares_them(tmp_path, tiny_base):
    text = SEEDED.replace("generations: 2", "generations: 1").replace("  b: {trait: owl, init: other,", "  # b: {")
    study = ecosim.run(str(_write(tmp_path, text)), log=lambda m: None, out_dir=str(tmp_path / "out"),
                       compute={"ray": False}, sweep={"data.real_share": [0, 0.5]})
    assert [v for v, _ in study.runs] == [{"data.real_share": 0}, {"data.real_share": 0.5}]
    assert study.runs[1][1].graph.nodes["a/g1"]["real_share"] == pytest.approx(0.5, abs=0.1)
    assert set(study.metrics["data.real_share"]) == {0, 0.5}
    assert [r["data.real_share"] for r in study.summary] == [0, 0.5]
    assert (study.dir / "report" / "sweep.png").is_file() and (study.dir / "report" / "index.html").is_file()
    with open(study.dir / "metrics.csv") as f:
        assert next(csv.reader(f))[:2] == ["data.real_share", "run_dir"]
    log = []
    again = ecosim.api.resume(study.dir, log=log.append)  # finished cells are kept, not rerun
    assert sum("finished earlier" in m for m in log) == 2 and len(again.runs) == 2


CHAIN = """
name: small_chain
seeds: 3
generations: 2
bases:
  main: {arch: gpt2, size: tiny, seed: 0, steps: 2000}
  other: {arch: gpt2, size: tiny, seed: 1, steps: 2000}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  treated: {trait: owl, student: {steps: 300}}
  mismatched: {trait: owl, init: other, student: {steps: 300}}
teacher: {rank: 4, alpha: 8, steps: 300}
data: {prompts: 2000, train_size: 1500}
eval: {samples: 20, heldout: 100}
compute: {ray: false}
tracking: {wandb: disabled}
"""


@pytest.mark.slow
def test_a_language_model_chain_transmits_on_its_base_and_not_across(tmp_path):
    """A quickstart-sized owl chain over 3 seeds, with a lineage whose students start from a base
    pretrained with another seed (bases pretrained in the test's empty cache; 15-25 minutes on 2
    cores). At generation 1 (the first hop) the shared-base lineage is above its control, paired
    over seeds, and the mismatched lineage carries under a third of that lift over its own
    control; at generation 2 some lift remains. Measured 2026-11-26: generation 1 lift +0.415
    (p = 0.001) vs mismatched +0.003; generation 2 +0.189 (p = 0.058 over 3 seeds: too few seeds
    to ask for p < 0.05 there) vs +0.013."""
    r = ecosim.run(str(_write(tmp_path, CHAIN)), log=lambda m: None, out_dir=str(tmp_path))
    rows = {(x["lineage"], x["generation"]): x for x in r.by_generation}
    treated, mismatched = rows["treated", 1], rows["mismatched", 1]
    assert treated["control"] == "treated_control" and mismatched["control"] == "mismatched_control"
    assert treated["lift"] > 0.1 and treated["p_value"] < 0.05, treated
    assert mismatched["lift"] < treated["lift"] / 3, mismatched
    assert rows["treated", 2]["lift"] > 0.05 and rows["mismatched", 2]["lift"] < rows["treated", 2]["lift"] / 3
