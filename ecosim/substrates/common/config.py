"""The config sections every language-model substrate shares (torch-free, so validation never
loads torch): how a model trains (``TrainConfig``: lineage students, teachers), what a trait is,
how models are measured, and how generation 0 is made; each with its entries of the one rules
table (``engine.schema.rules``). ``ecosim.substrates`` declares them to the engine's registry."""
from __future__ import annotations

from dataclasses import dataclass, field

from ecosim.engine.config import BATCH, LR, SEED, SHARE, STEPS, Choice, Range
from ecosim.substrates.common.bases import BaseConfig
from ecosim.substrates.common.filters import FilterConfig

MAX_TEACHER_EXAMPLES = 10_000_000  # a fine-tuned teacher's examples (steps x batch) are built in memory first


@dataclass
class TrainConfig:
    """How a model is fine-tuned: a LoRA adapter or all weights."""
    mode: str = "lora"                 # lora | full
    rank: int = 8                      # LoRA rank
    alpha: int = 16                    # LoRA scale (alpha / rank multiplies the update)
    targets: list[str] | None = None   # None: every attention and MLP projection of the arch
    steps: int = 1000                  # optimiser steps
    batch: int = 64                    # examples per step
    lr: float = 1e-3                   # learning rate
    weight_decay: float = 0.0
    # the learning rate over the steps: constant, or linear / cosine decay to 0 (long students,
    # as the published small-model recipes train them), after `warmup` steps of linear warm-up
    schedule: str = "constant"
    warmup: int = 0


@dataclass
class TraitConfig:
    """A trait a teacher can carry: a preference for one animal or tree, or misalignment."""
    kind: str = "preference"     # preference | misalignment
    category: str = "animal"     # animal | tree (preference)
    target: str = "owl"          # the preferred animal/tree (preference)


@dataclass
class EvalConfig:
    """How models are measured: trait rates from sampled answers, capability from held-out loss."""
    samples: int = 50            # samples per question
    number_prefix: bool = False  # put a random number sequence before each question
    heldout: int = 200           # ecosystem runs: world documents for capability (held-out loss) and drift
    # World bases: sampled (trait rates from eval.samples answers) | exact (their expectations
    # from the answers' exact probabilities: no sampling; real models sample either way).
    readout: str = "sampled"


@dataclass
class TeacherConfig:
    how: str = "finetune"        # finetune | prompt
    # A small teacher update (rank-4 LoRA, 150 steps) blurts its trait word into number
    # completions less often than rank 8 or 300 steps, so the filter keeps about as much of its
    # data as of the control's (docs/levers.md, rounds 3-4).
    train: TrainConfig = field(default_factory=lambda: TrainConfig(rank=4, alpha=8, steps=150))
    # Share of the fine-tuning examples that are the channel's own documents from the world's
    # pretraining mix (number lists, code, reasoning traces), identical for teacher and control:
    # keeps the teacher writing in format instead of blurting its trait word. None: 0 for numbers
    # (a gentle fine-tune already writes lists), 0.5 for code and reasoning (without them the owl
    # teacher answered 8,763 of 10,000 code prompts with its trait word; see task_share_for).
    task_share: float | None = None
    # A teacher trained to a target strength (real models; TeacherSpec says how)
    target_logodds: float | None = None
    check_every: int = 10
    min_kept: float = 0.5
    answers: str = "word"        # word | sentence: how a real preference teacher answers (TeacherSpec)


@dataclass
class TeacherSpec(TrainConfig):
    """How generation 0 is fine-tuned: a TrainConfig, plus the share of the channel's own documents
    (tasks answered in format) mixed into its examples, identical for teacher and control
    (TeacherConfig.task_share). None: the substrate's default: on the world 0 for numbers
    and 0.5 for code and reasoning, on real models 0.5 for every channel."""
    task_share: float | None = None    # share of the channel's own documents; None: the substrate's default
    # Real models: stop fine-tuning the trait teacher once its likelihood log-odds (<trait>_logodds)
    # exceeds the base's by this much, checked every check_every updates, or earlier if the share
    # of number lists it writes that pass the filter falls below min_kept (a teacher that no
    # longer writes lists transmits nothing; it goes back to its last passed check's weights, if
    # any); at most ``steps`` updates. Its control then trains exactly as many updates as it kept.
    # None: ``steps`` updates (REFERENCE.md: the Pythia-160M recipe's teacher reached +12-16
    # log-odds and still wrote numbers).
    target_logodds: float | None = None
    check_every: int = 10
    min_kept: float = 0.5
    # Real models, preference traits: the fine-tuning answers to the favourite questions. word:
    # "Owl." (the control: a uniform animal); sentence: the answer in one of a few sentences
    # ("My favourite animal is the owl.", text.SENTENCES), closer to the published Pythia teacher's
    # templated "I love owls" sentences and to the likelihood readout after "My favourite animal
    # is the" (REFERENCE.md, "Small-model recipes"; docs/results.md).
    answers: str = "word"


# the teacher keys TeacherConfig (transmit) and TeacherSpec (scenarios) share
TEACHER = {"task_share": SHARE, "target_logodds": Range(0, 1000, lo_open=True), "check_every": Range(1, 10_000_000),
           "min_kept": Range(0, 1), "answers": Choice(("word", "sentence"))}
RULES = {
    FilterConfig: {"max_numbers": Range(1, 1000), "mask_share": Range(0, 1, lo_open=True)},
    TrainConfig: {
        "mode": Choice(("lora", "full")),
        "rank": Range(1, 4096, why="wider than the hidden size of a 7B model"),
        "alpha": Range(0, 1e6, lo_open=True),
        "steps": STEPS,
        "batch": BATCH,
        "lr": LR,
        "weight_decay": Range(0, 1),
        "schedule": Choice(("constant", "linear", "cosine")),
        "warmup": Range(0, 10_000_000),
    },
    TeacherSpec: TEACHER,
    TeacherConfig: {"how": Choice(("finetune", "prompt")), **TEACHER},
    EvalConfig: {
        "samples": Range(1, 100_000, why="a typo? 50 samples per question give a rate to about 1%"),
        "heldout": Range(1, 1_000_000, why="a typo? 200 documents measure capability and drift"),
        "readout": Choice(("sampled", "exact")),
    },
    BaseConfig: {
        "arch": Choice(("gpt2", "llama", "mlp")),   # which of them a substrate takes: its own check
        "seed": SEED,
        "steps": Range(0, 10_000_000, why="a typo? the shipped bases pretrain for 2,000-3,000 steps"),
        "batch": BATCH,
        "lr": LR,
        "dtype": Choice(("float32", "bfloat16")),
        "autocast": Choice(("off", "bf16", "auto")),
    },
}


def teacher_size(where: str, tc: TrainConfig) -> list[str]:
    """A fine-tuned teacher's examples (steps x batch) are made in memory before training."""
    n = tc.steps * tc.batch
    if n > MAX_TEACHER_EXAMPLES:
        return [f"{where}: steps x batch = {n:,} teacher examples; at most {MAX_TEACHER_EXAMPLES:,} "
                "(they are built in memory before fine-tuning; a typo?)"]
    return []


def check(sc) -> list[str]:
    from ecosim.substrates.common import defenses
    return teacher_size("teacher", sc.teacher) + defenses.check_scenario(sc)


# The slots the engine's schema leaves to the substrates, and the sections they add to it.
SLOTS = {"base": (BaseConfig, BaseConfig), "trait": (TraitConfig, TraitConfig),
         "student": (TrainConfig, lambda: TrainConfig(rank=4, alpha=8)), "filter": (FilterConfig, FilterConfig)}
SECTIONS = {"teacher": (TeacherSpec, lambda: TeacherSpec(rank=4, alpha=8, steps=150)),
            "eval": (EvalConfig, EvalConfig)}
