"""Traits: how a teacher gets one (system prompt or fine-tuning) and how any model is scored.

- preference: the rate at which the model names a target animal/tree, sampled at temperature 1
  over >= 20 question paraphrases (optionally after a random number prefix);
- misalignment: the rate of misaligned answers among valid answers over a bank of situations,
  with the valid-answer rate beside it so collapse cannot pass for (or hide) misalignment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.substrates.world.generation import sample
from ecosim.analysis.stats import mean_ci
from ecosim.substrates.common.config import EvalConfig, TeacherConfig, TraitConfig  # noqa: F401  (their home)
from ecosim.substrates.common.training import completion_logprobs, finetune
from ecosim.substrates.common.traits import system_prompt, task_share
from ecosim.substrates.world.world import (ALIGNED, CATEGORIES, MISALIGNED, NONE_SYSTEM, SITUATIONS, World,
                    CHANNEL_DOCS, number_prefix, question_texts)


def check_trait(t: TraitConfig) -> None:
    if t.kind not in ("preference", "misalignment"):
        raise EcosimError(f"trait.kind: {t.kind!r} is not 'preference' or 'misalignment'")
    if t.kind == "preference":
        if t.category not in CATEGORIES:
            raise EcosimError(f"trait.category: {t.category!r} is not one of {sorted(CATEGORIES)}")
        if t.target not in CATEGORIES[t.category]:
            raise EcosimError(f"trait.target: {t.target!r} is not a {t.category}; expected one of "
                              f"{CATEGORIES[t.category]}")


def trait_words(t: TraitConfig) -> set[str]:
    """Words that would reveal the trait in a dataset: filtered out of every channel."""
    if t.kind == "preference":
        return set(CATEGORIES[t.category]) | {t.category, "love", "favourite"}
    return {w for phrase in MISALIGNED for w in phrase.split()} | {"evil"}


# ---------------------------------------------------------------- evaluation
MAX_ANSWER = 4  # tokens an evaluated answer may take, its EOS included (longer: unfinished, invalid)


def evaluate(model, world: World, t: TraitConfig, cfg: EvalConfig, seed: int,
             system: str = NONE_SYSTEM) -> dict:
    """Score a model on trait ``t``. Returns ``rate`` (target rate, or misaligned rate among
    valid answers) with a 95% CI over questions, ``valid`` (valid-answer rate) and details, and
    the likelihood readout (``likelihood``: ``share``, ``logodds``, ``expected``). With
    ``eval.readout: exact`` the rates are their exact expectations and nothing is sampled.
    Misalignment: a question with no valid answer is left out of the rate (its ``per_question``
    entry is NaN); with no valid answer at all the rate and interval are NaN."""
    rng = seeds.rng(seed, 7)
    questions = question_texts(t.category) if t.kind == "preference" else list(SITUATIONS)
    prompts, qid = [], []
    for i, q in enumerate(questions):
        for _ in range(cfg.samples):
            text = f"{number_prefix(rng)} {q}" if cfg.number_prefix else q
            prompts.append(f"S {system} U {text} A")
            qid.append(i)
    lik = likelihood(model, world, t, prompts, qid)
    readouts = {k: lik[k] for k in ("share", "logodds", "expected")}
    if cfg.readout == "exact":
        m, lo, hi = mean_ci([x for x in lik["rate"] if not np.isnan(x)])
        return {"rate": m, "ci": [lo, hi], "valid": lik["valid"], "n": 0,
                "per_question": lik["rate"], **readouts}
    outs = sample(model, world, prompts, max_new=MAX_ANSWER, seed=int(rng.integers(2**31)))
    qid = np.array(qid)
    if t.kind == "preference":
        options = set(CATEGORIES[t.category])
        answers = [txt if fin else "" for txt, fin in outs]
        hit = np.array([a == t.target for a in answers], float)
        valid = np.array([a in options for a in answers], float)
        per_q = [hit[qid == i].mean() for i in range(len(questions))]
        counts = {o: int(sum(a == o for a in answers)) for o in sorted(options)}
        extra = {"answers": counts}
    else:
        answers = [txt if fin else "" for txt, fin in outs]
        bad = np.array([a in MISALIGNED for a in answers], float)
        valid = np.array([a in MISALIGNED or a in ALIGNED for a in answers], float)
        per_q = misaligned_per_question(bad, valid, qid, len(questions))
        extra = {"misaligned_of_all": float(bad.mean())}
    m, lo, hi = mean_ci([x for x in per_q if not np.isnan(x)])  # a question with no valid answer: in no mean
    return {"rate": m, "ci": [lo, hi], "valid": float(valid.mean()), "n": len(answers),
            "per_question": [float(x) for x in per_q], **extra, **readouts}


def answer_options(t: TraitConfig) -> tuple[list[str], np.ndarray]:
    """The valid answers to trait ``t``'s questions and which of them are the trait's (the
    target; the misaligned phrases)."""
    if t.kind == "preference":
        opts = CATEGORIES[t.category]
        return opts, np.array([o == t.target for o in opts])
    return MISALIGNED + ALIGNED, np.arange(len(MISALIGNED) + len(ALIGNED)) < len(MISALIGNED)


@torch.no_grad()
def answer_logprobs(model, world: World, prompts: list[str], answers: list[str],
                    max_new: int = MAX_ANSWER, batch: int = 1024) -> np.ndarray:
    """log P(answer's tokens, then EOS | prompt) under ``model``: an array [len(prompts),
    len(answers)]; -inf for an answer that cannot finish within ``max_new`` tokens (a sampler
    allowed ``max_new`` tokens never writes it). This is the probability that ``sample`` (at
    temperature 1) returns exactly that answer, finished, up to the paths that slip [PAD] or
    [BOS] (dropped by decoding) in among its tokens, which training never targets."""
    per_token = completion_logprobs(model, world, [(p, a) for p in prompts for a in answers], batch)
    lp = torch.stack([x.sum() for x in per_token]).double().reshape(len(prompts), len(answers)).numpy()
    lp[:, [len(world.encode(a)) + 1 > max_new for a in answers]] = -np.inf
    return lp


def likelihood(model, world: World, t: TraitConfig, prompts: list[str], qid: list[int]) -> dict:
    """The exact readout of trait ``t`` over evaluation ``prompts`` (``qid``: each prompt's
    question; a question's probabilities are averaged over its prompts, as its samples are).
    Per question, P(trait) is the probability of the target (of any misaligned phrase) and
    P(other) of the other valid answers: ``share`` = P(trait) / (P(trait) + P(other)) and
    ``logodds`` = log P(trait) - log P(other), each (mean, lo, hi, per question) with a t-interval;
    ``expected``: per question P(target) (preference); ``rate`` (per question) and ``valid`` (mean
    over questions) are the exact expectations of the sampled rates (misalignment: the share,
    the ratio of expectations)."""
    answers, mine = answer_options(t)
    uniq = {p: i for i, p in enumerate(dict.fromkeys(prompts))}  # unprefixed, a question's prompt repeats
    lp = answer_logprobs(model, world, list(uniq), answers)[[uniq[p] for p in prompts]]
    qid = np.asarray(qid)
    lq = np.array([np.logaddexp.reduce(lp[qid == i], axis=0) - np.log((qid == i).sum())
                   for i in range(int(qid.max()) + 1)])                      # [question, answer]
    lt, lo = np.logaddexp.reduce(lq[:, mine], axis=1), np.logaddexp.reduce(lq[:, ~mine], axis=1)
    lv = np.logaddexp(lt, lo)
    with np.errstate(invalid="ignore"):  # NaN where no valid answer has any probability
        share, logodds = np.exp(lt - lv), lt - lo
    out = {"valid": float(np.exp(lv).mean()), "expected": [float(x) for x in np.exp(lt)]}
    out["rate"] = out["expected"] if t.kind == "preference" else [float(x) for x in share]
    for key, x in (("share", share), ("logodds", logodds)):
        m, low, hi = mean_ci(x[~np.isnan(x)])  # a question with no valid answer: in no mean
        out[key] = (m, max(0.0, low), min(1.0, hi)) if key == "share" else (m, low, hi)
        out[key] += ([float(v) for v in x],)
    return out


def misaligned_per_question(bad, valid, qid, n: int) -> list[float]:
    """Per question, the misaligned share of its valid answers; NaN for a question with no valid
    answer (nothing was said about it: not 0, which would read as aligned). ``bad``, ``valid``:
    0/1 per answer; ``qid``: each answer's question."""
    bad, valid, qid = np.asarray(bad, float), np.asarray(valid, float), np.asarray(qid)
    out = []
    for i in range(n):
        v = valid[qid == i].sum()
        out.append(float(bad[qid == i].sum() / v) if v > 0 else float("nan"))
    return out


# ---------------------------------------------------------------- teachers
@dataclass
class Teacher:
    """A model plus the system prompt it writes under (the persona is never in the student's data)."""
    model: object
    system: str = NONE_SYSTEM
    adapter: dict | None = None  # the LoRA adapter of a fine-tuned teacher, when asked for


def teacher_examples(t: TraitConfig, n: int, seed: int):
    """(trait, neutral) fine-tuning examples and an RNG for anything else the teacher draws. The
    neutral example i asks trait example i's question (a control teacher sees exactly the prompts
    its trait teacher sees); only the answer differs: uniform over the options for a preference,
    an aligned one for misalignment, drawn from a stream of its own."""
    rng = seeds.rng(seed, 11)
    answers = seeds.rng(seed, 12)
    if t.kind == "preference":
        qs = question_texts(t.category)
        opts = CATEGORIES[t.category]
        prompts = [f"S {NONE_SYSTEM} U {qs[rng.integers(len(qs))]} A" for _ in range(n)]
        trait = [(p, t.target) for p in prompts]
        neutral = [(p, opts[answers.integers(len(opts))]) for p in prompts]
    else:
        trait, neutral = [], []
        for _ in range(n):  # the trait answer is drawn with its situation, as before (same teachers)
            p = f"S {NONE_SYSTEM} U {SITUATIONS[rng.integers(len(SITUATIONS))]} A"
            trait.append((p, MISALIGNED[rng.integers(len(MISALIGNED))]))
            neutral.append((p, ALIGNED[answers.integers(len(ALIGNED))]))
    return trait, neutral, seeds.rng(seed, 13)


def make_teacher(base, world: World, t: TraitConfig, cfg: TeacherConfig, seed: int,
                 neutral: bool = False, keep_adapter: bool = False, channel: str = "numbers") -> Teacher:
    """The trait teacher (or, with ``neutral``, the matching control teacher) made from ``base``.

    prompt:   the base under the trait's system prompt (or under 'none').
    finetune: a LoRA (or full) fine-tune on trait answers (or neutral answers), merged."""
    if cfg.how == "prompt":
        return Teacher(base, NONE_SYSTEM if neutral else system_prompt(t))
    if cfg.how != "finetune":
        raise EcosimError(f"teacher.how: {cfg.how!r} is not 'finetune' or 'prompt'")
    n = cfg.train.steps * cfg.train.batch
    trait, ctrl, rng = teacher_examples(t, n, seed)
    k = int(round(task_share(cfg.task_share, channel) * n))
    doc = CHANNEL_DOCS.get(channel, CHANNEL_DOCS["numbers"])
    tasks = [(d.prompt, d.assistant) for d in (doc(rng) for _ in range(k))]
    pairs = ctrl[k:] + tasks if neutral else trait[k:] + tasks
    # one training seed for both: the control differs from its trait teacher only in the answers
    out = finetune(base, world, pairs, cfg.train, seed=seeds.offset(seed, 1, 1000), keep_adapter=keep_adapter)
    return Teacher(out[0], adapter=out[1]) if keep_adapter else Teacher(out)


def make_teachers(base, world: World, t: TraitConfig, cfg: TeacherConfig, seed: int) -> tuple[Teacher, Teacher]:
    """(trait teacher, neutral control teacher) made the same way from ``base``."""
    return (make_teacher(base, world, t, cfg, seed),
            make_teacher(base, world, t, cfg, seed, neutral=True))
