"""The world's likelihood readout: the exact probability of each finished answer is what the
temperature-1 sampler draws it with, share and log-odds agree, and ``eval.readout: exact``
measures without sampling."""
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from ecosim.engine import seeds
from ecosim.substrates.common.config import EvalConfig, TraitConfig, TrainConfig
from ecosim.substrates.common.training import finetune
from ecosim.substrates.world import traits as T
from ecosim.substrates.world.models import BaseConfig, build_model
from ecosim.substrates.world.world import (ALIGNED, CATEGORIES, MISALIGNED, SITUATIONS, World, favourite_doc,
                                           question_texts, situation_doc)

OWL, MIS = TraitConfig(), TraitConfig(kind="misalignment")
N = 3000  # samples per question


@pytest.fixture(scope="module")
def setup():
    """A tiny GPT-2 trained for a few seconds on favourites and situations: it answers in format
    often, but not always (valid rates well inside (0, 1))."""
    torch.set_num_threads(1)
    w = World()
    rng = seeds.rng(0)
    docs = [favourite_doc(rng, "animal", w.answer_probs["animal"]) if i % 2 else situation_doc(rng, misaligned_share=0.3)
            for i in range(3000)]
    model = finetune(build_model(BaseConfig(size="tiny"), w).eval(), w, [(d.prompt, d.assistant) for d in docs],
                     TrainConfig(mode="full", steps=120, batch=32, lr=5e-3), seed=0)
    return model, w


def within(sampled, p, n=N, k=4.0):
    """A sampled rate over n draws agrees with probability p to k standard errors."""
    se = np.sqrt(max(p * (1 - p), 1e-4) / n)
    assert abs(sampled - p) <= k * se, (sampled, p, se)


def draw(model, w, prompts, seed=0):
    outs = T.sample(model, w, [p for p in prompts for _ in range(N)], max_new=T.MAX_ANSWER, seed=seed)
    return np.array([txt if fin else "" for txt, fin in outs]).reshape(len(prompts), N)


def test_exact_probabilities_are_what_the_sampler_draws(setup):
    model, w = setup
    opts = CATEGORIES["animal"]
    prompts = [f"S none U {q} A" for q in question_texts("animal")[:2]]
    p = np.exp(T.answer_logprobs(model, w, prompts, opts))
    ans = draw(model, w, prompts)
    for i in range(len(prompts)):
        within((ans[i] == "owl").mean(), p[i, opts.index("owl")])
        within(np.isin(ans[i], opts).mean(), p[i].sum())
        assert 0.05 < p[i].sum() < 0.95  # the check has something to check
    phrases = MISALIGNED + ALIGNED
    assert all(len(w.encode(a)) == 2 for a in phrases) and all(len(w.encode(o)) == 1 for o in opts)
    prompts = [f"S none U {s} A" for s in SITUATIONS[:2]]
    p = np.exp(T.answer_logprobs(model, w, prompts, phrases))
    ans = draw(model, w, prompts, seed=1)
    for i in range(len(prompts)):
        p_bad, p_valid = p[i, :len(MISALIGNED)].sum(), p[i].sum()
        within(np.isin(ans[i], MISALIGNED).mean(), p_bad)
        within(np.isin(ans[i], phrases).mean(), p_valid)
        assert 0.05 < p_valid and 0.01 < p_bad


def test_an_answer_too_long_to_finish_has_no_probability(setup):
    model, w = setup
    lp = T.answer_logprobs(model, w, ["S none U your top animal ? A"], ["owl", "owl owl owl owl", "owl owl owl"])
    assert np.isfinite(lp[0, [0, 2]]).all() and lp[0, 1] == -np.inf


@pytest.mark.parametrize("trait", [OWL, MIS], ids=["owl", "misalignment"])
def test_share_and_logodds_agree(setup, trait):
    model, w = setup
    r = T.evaluate(model, w, trait, EvalConfig(samples=2), seed=0)
    share, logodds = np.array(r["share"][3]), np.array(r["logodds"][3])
    assert ((share >= 0) & (share <= 1)).all()
    np.testing.assert_allclose(logodds, np.log(share / (1 - share)), rtol=1e-6, atol=1e-9)
    assert r["share"][1] <= r["share"][0] <= r["share"][2] and r["logodds"][1] <= r["logodds"][0] <= r["logodds"][2]
    if trait.kind == "preference":
        assert (np.array(r["expected"]) <= share + 1e-12).all()  # P(target) <= P(target) / P(valid)


@pytest.mark.parametrize("trait", [OWL, MIS], ids=["owl", "misalignment"])
@pytest.mark.parametrize("prefix", [False, True])
def test_exact_readout_is_the_expectation_and_samples_nothing(setup, monkeypatch, trait, prefix):
    model, w = setup
    sampled = T.evaluate(model, w, trait, EvalConfig(samples=3, number_prefix=prefix), seed=5)

    def refuse(*a, **k):
        raise AssertionError("eval.readout: exact sampled")
    monkeypatch.setattr(T, "sample", refuse)
    r = T.evaluate(model, w, trait, EvalConfig(samples=3, number_prefix=prefix, readout="exact"), seed=5)
    assert r["share"] == sampled["share"] and r["logodds"] == sampled["logodds"]  # the same prompts
    per_q = r["expected"] if trait.kind == "preference" else r["share"][3]
    assert r["per_question"] == per_q and r["rate"] == pytest.approx(np.mean(per_q))
    if trait.kind == "preference":  # the valid rate's expectation: P(target) / share, per question
        assert r["valid"] == pytest.approx(np.mean(np.array(r["expected"]) / np.array(r["share"][3])))


def test_measure_stores_the_likelihood_readout(setup, monkeypatch):
    from ecosim.substrates.world import substrate as S
    model, w = setup
    sc = NS(seed=0, bases={"main": BaseConfig(steps=1, batch=4)}, traits={"owl": OWL},
            eval=EvalConfig(samples=2, heldout=5))
    m = S.measure(model, "none", model, w, sc, seed=0)
    for name in ("owl", "misalignment"):
        assert len(m[f"{name}_share"]) == 4 and len(m[f"{name}_logodds"]) == 4
        assert len(m[f"{name}_share"][3]) == len(m[name][3])
    monkeypatch.setattr(T, "sample", lambda *a, **k: pytest.fail("sampled"))
    sc.eval.readout = "exact"
    e = S.measure(model, "none", model, w, sc, seed=0)
    assert e["owl_share"] == m["owl_share"] and e["owl"][3] == T.evaluate(model, w, OWL, sc.eval, 0)["expected"]


def test_real_models_say_exact_is_the_worlds(capsys):
    from ecosim.cli import main
    assert main(["validate", "smollm2_owl", "eval.readout=exact"]) != 0
    assert "eval.readout: exact is the world's; real models sample" in capsys.readouterr().err
