"""Traits: how a teacher gets one (system prompt or fine-tuning) and how any model is scored.

- preference: the rate at which the model names a target animal/tree, sampled at temperature 1
  over >= 20 question paraphrases (optionally after a random number prefix);
- misalignment: the rate of misaligned answers among valid answers over a bank of situations,
  with the valid-answer rate beside it so collapse cannot pass for (or hide) misalignment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.substrates.world.generation import sample
from ecosim.analysis.stats import mean_ci
from ecosim.substrates.common.config import EvalConfig, TeacherConfig, TraitConfig  # noqa: F401  (their home)
from ecosim.substrates.common.training import finetune
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
def evaluate(model, world: World, t: TraitConfig, cfg: EvalConfig, seed: int,
             system: str = NONE_SYSTEM) -> dict:
    """Score a model on trait ``t``. Returns ``rate`` (target rate, or misaligned rate among
    valid answers) with a 95% CI over questions, ``valid`` (valid-answer rate) and details.
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
    outs = sample(model, world, prompts, max_new=4, seed=int(rng.integers(2**31)))
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
            "per_question": [float(x) for x in per_q], **extra}


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
