"""Scenario validation: every malformed scenario gets one clear error naming the file and key,
never a traceback; impossible topologies are errors too. No models are built here."""
import pytest

from ecosim.cli import main
from ecosim.engine.tasks import build_tasks
from ecosim.engine.plan import expand
from ecosim.engine.schema import load_scenario

GOOD = """
name: t
generations: 2
bases:
  main: {arch: gpt2, seed: 0}
  other: {arch: gpt2, seed: 1}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  a: {trait: owl}
  b: {trait: owl, init: other, control: false}
"""

BAD = {  # name: (yaml, text the error must contain)
    "typo key": (GOOD + "generatoins: 3\n", "did you mean 'generations'"),
    "typo nested key": (GOOD.replace("init: other", "innit: other"), "lineages.b.innit"),
    "wrong type": (GOOD.replace("generations: 2", "generations: five"), "generations"),
    "unknown lineage": (GOOD + "topology:\n  fan_in: {a: [bb]}\n", "unknown lineage 'bb'"),
    "cycle": (GOOD + "topology:\n  edges:\n    - {src: a, dst: b, lag: 0}\n    - {src: b, dst: a, lag: 0}\n",
              "cycle within one generation"),
    "missing base file": (GOOD.replace("{arch: gpt2, seed: 1}", "{arch: gpt2, path: /nonexistent/ckpt}"),
                          "bases.other.path"),
    "empty topology": ("name: t\nlineages: {}\n", "no lineages"),
    "negative generations": (GOOD.replace("generations: 2", "generations: -1"), "generations: must be >= 0"),
    "bad regime": (GOOD + "data: {regime: acumulate}\n", "did you mean 'accumulate'"),
    "real share > 1": (GOOD + "data: {real_share: 1.5}\n", "data.real_share"),
    "unreadable yaml": ("name: [unclosed\n", "not readable YAML"),
    "child with no parent": (GOOD.replace("b: {trait: owl, init: other, control: false}",
                                          "b: {origin: none, control: false}"), "a child with no parent"),
    "unknown base": (GOOD.replace("init: other", "init: othr"), "did you mean 'other'"),
    "unknown trait": (GOOD.replace("a: {trait: owl}", "a: {trait: eagle}"), "lineages.a.trait"),
    "bad edge key": (GOOD + "topology:\n  edges:\n    - {src: a, dts: b}\n", "did you mean"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_scenario_gives_one_clear_error(name, tmp_path, capsys):
    text, expected = BAD[name]
    p = tmp_path / "s.yaml"
    p.write_text(text)
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ecosim: error:") and "Traceback" not in err
    assert expected in err, err
    assert str(p) in err


def test_missing_file(capsys):
    assert main(["validate", "/nonexistent/scenario.yaml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_every_problem_reported_at_once(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD + "generatoins: 3\ndata: {real_share: 2.0, regime: sometimes}\n")
    with pytest.raises(Exception) as e:
        load_scenario(str(p))
    msg = str(e.value)
    assert "generatoins" in msg
    p.write_text(GOOD + "data: {real_share: 2.0, regime: sometimes}\n")
    with pytest.raises(Exception) as e:
        load_scenario(str(p))
    assert "data.real_share" in str(e.value) and "data.regime" in str(e.value)


def test_controls_and_edges_are_expanded(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD)
    plan = expand(load_scenario(str(p)))
    assert set(plan.lineages) == {"a", "b", "a_control"}
    assert plan.control_of == {"a_control": "a"}
    assert [e.src for e in plan.parents["a_control"]] == ["a_control"]
    assert plan.lineages["a_control"].trait is None
    tasks = build_tasks(plan)
    assert ("train", "b", 2, None) in tasks and tasks[("train", "b", 2, None)].init == {"base": "other"}


def test_fan_in_control_learns_from_the_controls_of_treated_parents(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("b: {trait: owl, init: other, control: false}", "b: {control: false}\n  c: {origin: none}")
                 + "topology:\n  fan_in: {c: [a, b]}\n")
    plan = expand(load_scenario(str(p)))
    assert sorted(e.src for e in plan.parents["c"]) == ["a", "b"]
    assert sorted(e.src for e in plan.parents["c_control"]) == ["a_control", "b"]


def test_replicas_and_ring(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(GOOD.replace("a: {trait: owl}", "a: {trait: owl, replicas: 3, control: false}")
                 + "topology:\n  ring: [a, b]\n")
    plan = expand(load_scenario(str(p)))
    assert {"a_0", "a_1", "a_2", "b"} == set(plan.lineages)


@pytest.mark.parametrize("name", ["quickstart", "owl_chain", "misalignment_drift", "fan_in", "rotating_bases",
                                  "accumulate_vs_replace", "real_data_dilution", "mlp_ecosystem", "defenses",
                                  "defended_chain", "persistence"])
def test_shipped_scenarios_validate(name, capsys):
    assert main(["validate", name]) == 0, capsys.readouterr().err


def test_list_names_every_shipped_scenario(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out and "mlp_ecosystem" in out


def shrink(sc):
    """A shipped scenario at toy size: same lineages, topology and regime; tiny everything else."""
    sc.generations = min(sc.generations, 2)
    for b in sc.bases.values():
        b.steps = 300  # the session's cached tiny base (conftest) for seed 0
    for spec in sc.lineages.values():
        spec.student.steps, spec.student.batch = 10, 16
        spec.replicas = min(spec.replicas, 2)
    sc.teacher.steps, sc.teacher.batch = 10, 16
    sc.data.prompts, sc.data.train_size = 40, 30
    sc.eval.samples, sc.eval.heldout = 2, 10
    sc.mlp.teacher_epochs, sc.mlp.student_epochs, sc.mlp.noise_samples, sc.mlp.hidden = 2, 2, 256, 16
    sc.compute.ray, sc.tracking.wandb = False, "disabled"
    sc.seeds = 1
    sc.sweep = {k: v[:2] for k, v in sc.sweep.items()}  # a sweep: its first two cells
    return sc


@pytest.mark.parametrize("name", ["owl_chain", "misalignment_drift", "fan_in", "rotating_bases",
                                  "accumulate_vs_replace", "real_data_dilution", "mlp_ecosystem", "defended_chain"])
def test_shipped_scenario_runs_end_to_end_at_toy_size(name, tmp_path, tiny_base):
    from ecosim.store import graph as lg
    from ecosim.api import scenario_path
    from ecosim.engine.runner import run
    sc = shrink(load_scenario(scenario_path(name), [f"out_dir={tmp_path}"]))
    if sc.sweep:  # a sweep's cells are scenarios of their own: each runs end to end
        import ecosim
        study = ecosim.run(sc, log=lambda m: None)
        assert len(study.runs) == 2 and (study.dir / "report" / "sweep.png").is_file()
        assert (study.dir / "report" / "sweep_share.png").is_file()  # the world's likelihood share too
        Gs = [r.graph for _, r in study.runs]
    else:
        Gs = [lg.load(run(sc, log=lambda m: None)["run_dir"])]
    for G in Gs:
        planned = [n for n, a in G.nodes(data=True) if a["kind"] == "model"]
        assert planned and sorted(lg.models(G)) == sorted(planned)
    G = Gs[-1]
    if name == "real_data_dilution":  # cells: real_share 0 and 0.25
        assert any(a.get("real") for _, _, a in G.edges(data=True))
        assert 0.15 < G.nodes["owl/g1"]["real_share"] < 0.35
        assert Gs[0].nodes["owl/g1"]["real_share"] == 0
    if name == "defended_chain":  # each chain's datasets went through its own defense; the control's too
        for lin, d in (("remapped", "remap"), ("remapped_control", "remap"), ("rewritten", "rewrite")):
            (ds,) = [u for u, _ in G.in_edges(f"{lin}/g2") if G.nodes[u].get("kind") == "dataset"]
            assert list(G.nodes[ds]["defenses"]) == [d]
        (ds,) = [u for u, _ in G.in_edges("undefended/g2") if G.nodes[u].get("kind") == "dataset"]
        assert "defenses" not in G.nodes[ds]
    if name == "fan_in":
        assert {u for u, _ in G.in_edges("student/g1")} >= {"owl/g0/numbers/kept", "neutral/g0/numbers/kept"}
        edges = [a for _, _, a in G.in_edges("student/g1", data=True) if a["kind"] == "trained_on"]
        # what the student took from each parent (a short parent topped up by the other), summing to its set
        assert sum(a["share"] for a in edges) == pytest.approx(1.0) and all("asked_share" in a for a in edges)
        assert isinstance(G.nodes["student/g1"]["topped_up"], dict)
    if name == "accumulate_vs_replace":  # cells: replace, then accumulate
        assert {u for u, _ in G.in_edges("owl/g2")} >= {"owl/g0/numbers/kept", "owl/g1/numbers/kept"}
        assert "owl/g0/numbers/kept" not in {u for u, _ in Gs[0].in_edges("owl/g2")}
    if name == "rotating_bases":
        assert G.nodes["rotating/g1"]["base"] == "other" and G.nodes["rotating/g2"]["base"] == "main"
