"""Statistics that hold: each against scipy, numpy or a hand-computed answer on inputs whose
answer is known. No model is trained here."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sst

from ecosim.analysis.stats import holm, mean_ci, n_tests, paired_one_sided, paired_test, ratio_of_means_ci
from ecosim.store import graph as lg

DOCS = Path(__file__).resolve().parent.parent / "docs" / "transmit_results"


# ----------------------------------------------------------------- intervals and tests vs scipy
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_mean_ci_is_scipy_t_interval(level):
    x = np.random.default_rng(3).normal(0.4, 0.1, 9)
    m, lo, hi = mean_ci(x, level)
    want = sst.t.interval(level, len(x) - 1, loc=x.mean(), scale=sst.sem(x))
    assert m == pytest.approx(x.mean()) and (lo, hi) == pytest.approx(want)
    assert all(math.isnan(v) for v in mean_ci([]))  # no units: no number


def test_paired_one_sided_is_scipy_ttest_rel_greater():
    rng = np.random.default_rng(5)
    c = rng.uniform(0, 0.3, 7)
    t = c + rng.normal(0.05, 0.04, 7)
    want = sst.ttest_rel(t, c, alternative="greater").pvalue
    assert paired_one_sided(t, c) == pytest.approx(want)
    p, what = paired_test(t, c)
    assert p == pytest.approx(want) and what == "one-sided paired t over 7 pairs"


def test_zero_variance_differences_are_no_test():
    # every seed's difference is +0.012: a t statistic would be infinite (p = 0, or 1 the other
    # way round) on no spread at all; in float arithmetic the differences even differ in the last bit
    c = np.array([0.1, 0.25, 0.33, 0.6])
    t = c + 0.012
    assert np.ptp(t - c) > 0  # not exactly equal: an exact test would miss it
    for a, b in ((t, c), (c, t)):
        p, what = paired_test(a, b)
        assert math.isnan(p) and what.startswith("zero variance") and "no test" in what
        assert math.isnan(paired_one_sided(a, b))
    assert "+0.012" in paired_test(t, c)[1] and "-0.012" in paired_test(c, t)[1]
    p, what = paired_test([0.5, 0.5], [0.5, 0.5])
    assert math.isnan(p) and "+0" in what
    p, what = paired_test([1.0], [0.0])  # one pair: NaN, as before
    assert math.isnan(p) and "one pair" in what


# ----------------------------------------------------------------- Holm
def test_holm_known_answer():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, max(.., 2*0.03), max(.., 1*0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.4]) == pytest.approx([0.8, 0.8])  # capped at 1 and monotone
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_holm_leaves_nan_out_of_the_family():
    got = holm([0.01, float("nan"), None, 0.04, 0.03, 0.005])
    assert math.isnan(got[1]) and math.isnan(got[2])
    assert [got[i] for i in (0, 3, 4, 5)] == pytest.approx([0.03, 0.06, 0.06, 0.02])  # m = 4, not 6
    assert n_tests([0.01, float("nan"), None, 0.04]) == 2


def test_holm_matches_its_definition_on_random_families():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, rng.integers(1, 9))
        m, order = len(p), np.argsort(p)
        want = np.empty(m)
        want[order] = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        assert holm(p) == pytest.approx(want)


# ----------------------------------------------------------------- persistence: a ratio of means
def test_ratio_of_means_bootstrap_on_a_known_ratio():
    den = np.array([0.2, 0.3, 0.25, 0.35, 0.3, 0.22])
    r, lo, hi = ratio_of_means_ci(0.5 * den, den)  # every resample's ratio is exactly 0.5
    assert (r, lo, hi) == pytest.approx((0.5, 0.5, 0.5))
    rng = np.random.default_rng(1)
    den = rng.uniform(0.2, 0.4, 12)
    num = 0.6 * den + rng.normal(0, 0.02, 12)
    r, lo, hi = ratio_of_means_ci(num, den)
    assert r == pytest.approx(num.mean() / den.mean()) and lo < 0.6 < hi and lo < r < hi
    assert ratio_of_means_ci(num, den) == (r, lo, hi)  # seeded: the same interval every time
    # a seed whose generation-0 lift is not positive counts (it used to be dropped)
    r, *_ = ratio_of_means_ci([0.1, 0.1, 0.0], [0.2, 0.2, -0.1])
    assert r == pytest.approx(0.2 / 0.3)


def test_ratio_of_means_without_a_positive_denominator():
    assert all(math.isnan(v) for v in ratio_of_means_ci([0.1, 0.2], [-0.1, 0.05]))
    r, lo, hi = ratio_of_means_ci([0.1], [0.2])  # one seed: a ratio, no interval
    assert r == pytest.approx(0.5) and math.isnan(lo) and math.isnan(hi)
    r, lo, hi = ratio_of_means_ci([0.1, 0.1, 0.1], [0.5, -0.2, -0.2])  # resamples often <= 0
    assert r == pytest.approx(3.0) and math.isnan(lo) and math.isnan(hi)


def test_sweep_persistence_keeps_every_seed():
    from ecosim.studies.sweep import persistence
    r, lo, hi, n = persistence([(0.1, 0.2), (0.05, -0.01), (None, 0.3), (0.12, 0.25), (0.08, 0.18), (0.1, 0.22)])
    assert n == 5 and r == pytest.approx(0.45 / 0.84) and lo <= r <= hi
    assert persistence([(None, 0.1)]) == (None, None, None, 0)
    assert persistence([(0.1, -0.2), (0.1, -0.1)])[:3] == (None, None, None)


# ----------------------------------------------------------------- the valid-answer floor
def test_nan_valid_is_not_measurable():
    assert not lg.measurable({"owl_valid": float("nan")}, "owl")
    assert not lg.measurable({"owl_valid": 0.49}, "owl")
    assert lg.measurable({"owl_valid": lg.VALID_FLOOR}, "owl") and lg.measurable({}, "owl")


# ----------------------------------------------------------------- misalignment scoring
def test_a_question_without_valid_answers_is_left_out_not_scored_aligned():
    from ecosim.substrates.world.traits import misaligned_per_question
    qid = np.repeat([0, 1, 2], 4)
    valid = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    bad = np.array([1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0])
    per_q = misaligned_per_question(bad, valid, qid, 3)
    assert per_q[0] == 0.75 and math.isnan(per_q[1]) and per_q[2] == 0.5
    m, *_ = mean_ci([x for x in per_q if not math.isnan(x)])
    assert m == pytest.approx(0.625)  # not (0.75 + 0 + 0.5) / 3
    # where every question has valid answers, the numbers are the old formula's
    valid2 = np.ones(12)
    old = [bad[qid == i].sum() / max(valid2[qid == i].sum(), 1) for i in range(3)]
    assert misaligned_per_question(bad, valid2, qid, 3) == old
    assert all(math.isnan(x) for x in misaligned_per_question(bad, np.zeros(12), qid, 3))


# ----------------------------------------------------------------- transmit's summary
def _seed(seed, rates, valid=None, controls=None):
    from ecosim.studies.transmit import CONTROL
    valid = valid or {}
    return {"seed": seed, "scores": {n: {"rate": r, "ci": [r, r], "valid": valid.get(n, 0.95), "readouts": {}}
                                     for n, r in rates.items()},
            "kept": {w: {"kept_fraction": 0.7} for w in ("teacher", "control")}, "n_train": 10,
            "logit_mass_removed": None,
            "controls": controls or {n: CONTROL.get(n, "control") for n in rates}}


def _five(valid=None):
    rng = np.random.default_rng(2)
    out = []
    for s in range(5):
        c = 0.1 + rng.normal(0, 0.02)
        oc = 0.08 + rng.normal(0, 0.02)
        out.append(_seed(s, {"base": 0.1 + 0.01 * s, "teacher": 0.9 - 0.01 * s, "control_teacher": 0.09,
                             "control": c, "student_same_base": c + 0.3 + rng.normal(0, 0.05),
                             "control_other_seed": oc, "student_other_seed": oc + 0.01 + rng.normal(0, 0.02)},
                        valid(s) if valid else None))
    return out


def test_only_students_carry_a_lift_and_a_p_value():
    from ecosim.studies.transmit import summarise, table
    per_seed = _five()
    res = summarise({}, per_seed, 1.0, 0.0)
    c = res["conditions"]
    for n in ("base", "control", "control_other_seed", "control_teacher", "teacher"):
        assert "p_value" not in c[n] and "lift_vs_control" not in c[n], n
    assert c["teacher"]["lift_vs_base"] == pytest.approx(0.8 - 0.02 * 2) == res["teacher_lift"]
    rate = {n: [p["scores"][n]["rate"] for p in per_seed] for n in c}
    for s, ctrl in (("student_same_base", "control"), ("student_other_seed", "control_other_seed")):
        assert c[s]["control"] == ctrl
        assert c[s]["lift_vs_control"] == pytest.approx(np.mean(np.subtract(rate[s], rate[ctrl])))
        assert c[s]["p_value"] == pytest.approx(sst.ttest_rel(rate[s], rate[ctrl], alternative="greater").pvalue)
    ps = [c["student_same_base"]["p_value"], c["student_other_seed"]["p_value"]]
    assert [c["student_same_base"]["p_holm"], c["student_other_seed"]["p_holm"]] == pytest.approx(holm(ps))
    assert res["tests"]["count"] == 2
    text = table(res)
    assert "2 test(s) in this table" in text and "p Holm" in text
    assert text.splitlines()[1].startswith("base") and " – " in text.splitlines()[1]


def test_a_student_sure_to_end_below_its_control_is_named():
    from ecosim.studies.transmit import summarise, table
    per_seed = _five()
    for p in per_seed:  # the same-base student now ends 0.3 below its control in every seed
        sc = p["scores"]
        sc["student_same_base"]["rate"] = sc["control"]["rate"] - 0.3 - 0.01 * p["seed"]
    res = summarise({}, per_seed, 1.0, 0.0)
    st = res["conditions"]["student_same_base"]
    assert st["p_value"] > 0.99  # the one-sided test (a gain) sees nothing
    rate = [p["scores"]["student_same_base"]["rate"] for p in per_seed]
    ctrl = [p["scores"]["control"]["rate"] for p in per_seed]
    assert st["p_two_sided"] == pytest.approx(sst.ttest_rel(rate, ctrl).pvalue) and st["p_two_sided"] < 1e-4
    assert f"student_same_base: below its control, two-sided p {st['p_two_sided']:.2g}" in table(res)
    assert "below its control" not in table(summarise({}, _five(), 1.0, 0.0))  # a gain is not named so


def test_transmit_applies_the_valid_floor():
    from ecosim.studies.transmit import summarise, table
    # the other-seed student answers validly under half the time in every seed; its control, in 2 of 5 seeds
    def valid(s):
        return {"student_other_seed": 0.3, "control_other_seed": float("nan") if s < 2 else 0.9}
    res = summarise({}, _five(valid), 1.0, 0.0)
    c = res["conditions"]
    st = c["student_other_seed"]
    assert st["rate"] is None and st["lift_vs_control"] is None and st["p_value"] is None and st["p_holm"] is None
    assert "not measurable" in st["note"] and "not measurable" in st["test"]
    oc = c["control_other_seed"]
    assert oc["measurable_seeds"] == 3 and "3 of 5" in oc["note"]
    assert oc["rate"] == pytest.approx(np.mean(oc["per_seed"][2:]))  # the NaN-valid seeds are in no mean
    assert res["tests"]["count"] == 1
    assert c["student_same_base"]["p_holm"] == pytest.approx(c["student_same_base"]["p_value"])
    assert c["base"]["measurable_seeds"] == 5 and "note" not in c["base"]
    text = table(res)
    assert "n/m" in text and "not measurable" in text
    json.dumps(res)  # JSON-ready


def test_transmit_without_a_valid_rate_is_measurable():
    from ecosim.studies.transmit import summarise
    per_seed = _five()
    for p in per_seed:
        for sc in p["scores"].values():
            sc["valid"] = None  # a substrate that measures no valid-answer rate (graph.measurable: readable)
    c = summarise({}, per_seed, 1.0, 0.0)["conditions"]
    assert all(x["measurable_seeds"] == 5 and x["valid"] is None for x in c.values())
    assert c["student_same_base"]["p_value"] < 0.05


def test_a_record_without_own_controls_uses_the_shared_control_and_says_so():
    from ecosim.studies.transmit import summarise
    per_seed = _five()
    for p in per_seed:  # as transmit wrote before students had their own controls
        del p["scores"]["control_other_seed"], p["controls"]
    c = summarise({}, per_seed, 1.0, 0.0)["conditions"]["student_other_seed"]
    assert c["control"] == "control" and "shared control" in c["control_note"] and c["pairs"] == 5


def test_transmit_zero_variance_student_says_so():
    from ecosim.studies.transmit import summarise, table
    per_seed = _five()
    for p in per_seed:
        sc = p["scores"]
        sc["student_same_base"]["rate"] = sc["control"]["rate"] + 0.012
    res = summarise({}, per_seed, 1.0, 0.0)
    st = res["conditions"]["student_same_base"]
    assert math.isnan(st["p_value"]) and math.isnan(st["p_holm"]) and "zero variance" in st["test"]
    assert "+0.012" in st["test"] and res["tests"]["count"] == 1
    assert "zero variance" in table(res)


def test_restated_committed_results():
    """docs/transmit_results/*_restated.json is what summarise makes of the committed per-seed
    records: students alone carry a lift over their control student and a p-value."""
    from ecosim.studies.transmit import merge
    old = json.loads((DOCS / "transmit_engine_seeds5_own_controls.json").read_text())
    res = json.loads(json.dumps(merge([old])))
    restated = json.loads((DOCS / "transmit_engine_seeds5_own_controls_restated.json").read_text())
    assert restated["conditions"] == res["conditions"]
    for n, c in res["conditions"].items():
        assert ("p_value" in c) == n.startswith("student_"), n
        if n.startswith("student_"):  # the students' numbers are the ones recorded
            assert c["lift_vs_control"] == pytest.approx(old["conditions"][n]["lift_vs_control"])
            assert c["p_value"] == pytest.approx(old["conditions"][n]["p_value"])


def test_seeds_needed_matches_a_simulated_paired_t_test():
    """The power formula (noncentral t) against simulated one-sided paired t-tests; and the seed
    count is the first that reaches 80%."""
    import numpy as np
    from scipy import stats as st
    from ecosim.analysis.stats import power, seeds_needed
    n = seeds_needed(0.5, 1.0)
    assert power(n, 0.5, 1.0) >= 0.8 > power(n - 1, 0.5, 1.0)
    rng = np.random.default_rng(0)
    hits = np.mean([st.ttest_1samp(rng.normal(0.5, 1.0, n), 0, alternative="greater").pvalue < 0.05
                    for _ in range(3000)])
    assert abs(hits - power(n, 0.5, 1.0)) < 0.03
    assert seeds_needed(1.0, 0.01) == 2 and power(1, 1.0, 1.0) == 0.0
    assert seeds_needed(0.12, 0.13) == 9
