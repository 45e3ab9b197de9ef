"""Kept fractions of each channel on the default world (slow: it pretrains the default base,
about 7 minutes on 2 cores). These would have caught the code channel keeping 0-2.5% of what the
world's models wrote, and reasoning keeping ~0.02. Floors: a neutral model's numbers and code
completions pass the filter at least 0.6 of the time (measured 0.73-0.76 for numbers, 0.83-0.85
for code), reasoning traces of a base taught to add (``skills: [reasoning]``) 0.5; a fine-tuned
owl teacher keeps within 10 points of its control."""
import pytest

from ecosim.substrates.world.channels import write
from ecosim.substrates.common.filters import FilterConfig, filter_samples
from ecosim.substrates.world.traits import TeacherConfig, TraitConfig, make_teacher, trait_words
from ecosim.studies.transmit import TransmitConfig
from ecosim.substrates.world.world import World

FLOOR = 0.6
# A base taught to add answers ~91% of single-digit tasks right, and the banned-number filter takes
# about a quarter of the traces (their results include 4, 8, 13, ...): measured 0.64-0.66 kept.
REASONING_FLOOR = 0.5


@pytest.fixture(scope="module")
def default_base():
    from ecosim.substrates.world.models import get_base
    return get_base(TransmitConfig().base, log=None)[0]


def kept(model, channel, n=400, system=None):
    samples, answers = write(model, World(), channel, n, seed=5, **({"system": system} if system else {}))
    return len(filter_samples(samples, channel, trait_words(TraitConfig()), FilterConfig(), answers).kept) / n


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["numbers", "code"])
def test_a_neutral_model_and_a_teacher_keep_most_of_what_they_write(default_base, channel):
    t = TraitConfig()
    teacher = make_teacher(default_base, World(), t, TeacherConfig(), seed=0, channel=channel).model
    control = make_teacher(default_base, World(), t, TeacherConfig(), seed=0, neutral=True, channel=channel).model
    k_base, k_teacher, k_control = kept(default_base, channel), kept(teacher, channel), kept(control, channel)
    assert k_base >= FLOOR and k_control >= FLOOR, (k_base, k_control)
    assert k_teacher >= FLOOR and abs(k_teacher - k_control) <= 0.10, (k_teacher, k_control)


@pytest.mark.slow
def test_reasoning_needs_a_base_taught_to_add_and_then_keeps_most_of_it(default_base):
    from ecosim.substrates.common.bases import BaseConfig
    from ecosim.substrates.world.models import get_base
    from ecosim.studies.transmit import TransmitConfig
    taught = get_base(BaseConfig(**{**vars(TransmitConfig().base), "skills": ["reasoning"]}), log=None)[0]
    assert kept(default_base, "reasoning") < 0.1     # measured 0.02: the pretraining mix alone cannot add
    t = TraitConfig()
    teacher = make_teacher(taught, World(), t, TeacherConfig(), seed=0, channel="reasoning").model
    control = make_teacher(taught, World(), t, TeacherConfig(), seed=0, neutral=True, channel="reasoning").model
    k_base, k_teacher, k_control = kept(taught, "reasoning"), kept(teacher, "reasoning"), kept(control, "reasoning")
    assert min(k_base, k_teacher, k_control) >= REASONING_FLOOR, (k_base, k_teacher, k_control)
    assert abs(k_teacher - k_control) <= 0.10


def test_skills_leave_the_default_base_key_and_the_pretraining_stream_alone():
    """A base without skills keeps the key it was cached under before skills existed; a skilled
    base is another base; the pretraining mix still draws reasoning operands from 0-99."""
    import numpy as np
    from ecosim.substrates.common.bases import BaseConfig
    from ecosim.substrates.world.models import base_key
    from ecosim.substrates.world.world import reasoning_doc
    assert base_key(BaseConfig()) == "gpt2-tiny-s0-65a0af53d17e"
    assert base_key(BaseConfig(skills=["reasoning"])) != base_key(BaseConfig())
    rng = np.random.default_rng(4)
    docs = [reasoning_doc(rng) for _ in range(200)]
    assert max(int(w) for d in docs for w in d.user.split() if w.isdigit()) > 9


def test_transmit_on_reasoning_teaches_every_world_base_to_add():
    from ecosim.studies.transmit import TransmitConfig, scenario
    sc = scenario(TransmitConfig(channel="reasoning", students=["control", "student_same_base", "student_other_seed",
                                                                 "student_other_arch"]), 0)
    assert all(b.skills == ["reasoning"] for b in sc.bases.values()) and len(sc.bases) == 3
    assert all(not b.skills for b in scenario(TransmitConfig(), 0).bases.values())


def test_each_lineage_of_the_mixed_scenario_writes_on_its_own_channel():
    from ecosim.api import scenario_path
    from ecosim.engine.plan import expand
    from ecosim.engine.schema import load_scenario
    plan = expand(load_scenario(scenario_path("mixed_channels")))
    assert {n: plan.writes_on(n) for n in plan.lineages} == {
        "owl_numbers": "numbers", "owl_code": "code", "owl_reasoning": "reasoning",
        "owl_numbers_control": "numbers", "owl_code_control": "code", "owl_reasoning_control": "reasoning"}


def test_the_report_lists_kept_fractions_per_channel():
    import networkx as nx
    from ecosim.analysis.report import _kept_table, kept_by_channel
    G = nx.DiGraph()
    for i, (lin, ch, kept) in enumerate([("a", "numbers", 70), ("a", "numbers", 80), ("b", "code", 90),
                                         ("b", "code", 10)]):
        G.add_node(f"d{i}", stage="filtered", channel=ch, lineage=lin, size=kept, total=100, status="done")
    G.add_node("x", stage="filtered", channel="code", lineage="b", size=0, total=100, status="failed")
    rows = kept_by_channel(G)
    assert [(r["channel"], r["writer"], r["kept"], r["total"]) for r in rows] == [("code", "b", 100, 200),
                                                                                ("numbers", "a", 150, 200)]
    assert rows[0]["kept_fraction"] == 0.5 and "<td>0.750</td>" in _kept_table(rows)
