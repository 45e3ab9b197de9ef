"""The single-hop experiment: does a teacher's trait reach students through filtered data?

Per seed: make a trait teacher and a neutral control teacher from the shared base; each writes on
the channel; the data is filtered and both kept sets are subsampled to one size; students train
on it from the same base, a base with another seed, and a base of the other architecture (and,
on the logit channel, on the teacher's soft labels). Every model is scored on the trait; lifts
are measured against the control student, seed by seed."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import EcosimError
from .channels import CHANNELS, soft_labels, write
from .filters import BANNED_NUMBERS, FilterConfig, filter_samples, subsample
from .models import BaseConfig, get_base, SIZES
from .stats import mean_ci, paired_one_sided
from .traits import (EvalConfig, TeacherConfig, TraitConfig, check_trait, evaluate, make_teachers,
                     trait_words)
from .training import TrainConfig, finetune
from .world import World


# Each student and the base it starts from; logit students learn from soft labels.
STUDENT_BASE = {"control": "same", "student_same_base": "same", "student_other_seed": "other_seed",
                "student_other_arch": "other_arch", "student_logit": "same",
                "student_logit_other_seed": "other_seed"}
STUDENTS = tuple(STUDENT_BASE)
DEFAULT_STUDENTS = STUDENTS[:5]
LOGIT_STUDENTS = {"student_logit", "student_logit_other_seed"}


@dataclass
class LogitConfig:
    top_k: int | None = 32       # None: the full vocabulary


@dataclass
class TransmitConfig:
    trait: TraitConfig = field(default_factory=TraitConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    base: BaseConfig = field(default_factory=BaseConfig)
    other_seed: int = 1              # seed of the mismatched base (same architecture)
    other_arch: str = "llama"        # architecture of the cross-architecture base
    channel: str = "numbers"
    prompts: int = 10000             # samples each teacher writes
    train_size: int = 8000           # examples per student (capped by the smallest kept set)
    filter: FilterConfig = field(default_factory=FilterConfig)
    # rank-4 LoRA students carried more of the teacher's lift than rank 8 or 16 (docs/levers.md)
    student: TrainConfig = field(default_factory=lambda: TrainConfig(rank=4, alpha=8))
    logit: LogitConfig = field(default_factory=LogitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seeds: int = 1
    seed: int = 0                    # seeds used: seed, seed+1, ...
    students: list[str] = field(default_factory=lambda: list(DEFAULT_STUDENTS))  # which students to train
    data_dir: str | None = None      # if set, each condition's filtered training set is written here (jsonl)


def check(cfg: TransmitConfig) -> list[str]:
    """Every semantic problem with ``cfg``, one line each (load_config reports them together)."""
    problems = []
    try:
        check_trait(cfg.trait)
    except EcosimError as e:
        problems.append(str(e))
    if cfg.teacher.how not in ("finetune", "prompt"):
        problems.append(f"teacher.how: {cfg.teacher.how!r} is not 'finetune' or 'prompt'")
    if cfg.channel not in CHANNELS:
        problems.append(f"channel: {cfg.channel!r} is not one of {list(CHANNELS)}")
    for name, arch in (("base.arch", cfg.base.arch), ("other_arch", cfg.other_arch)):
        if arch not in ("gpt2", "llama"):
            problems.append(f"{name}: {arch!r} is not 'gpt2' or 'llama'")
    if cfg.base.size not in SIZES:
        problems.append(f"base.size: {cfg.base.size!r} is not one of {sorted(SIZES)}")
    for name, tc in (("student", cfg.student), ("teacher.train", cfg.teacher.train)):
        if tc.mode not in ("lora", "full"):
            problems.append(f"{name}.mode: {tc.mode!r} is not 'lora' or 'full'")
        if tc.steps < 1 or tc.batch < 1 or tc.lr <= 0:
            problems.append(f"{name}: steps, batch and lr must be positive")
    for name in ("seeds", "prompts", "train_size"):
        if getattr(cfg, name) < 1:
            problems.append(f"{name}: must be >= 1 (got {getattr(cfg, name)})")
    if cfg.eval.samples < 1:
        problems.append(f"eval.samples: must be >= 1 (got {cfg.eval.samples})")
    unknown = [s for s in cfg.students if s not in STUDENTS]
    if unknown or "control" not in cfg.students:
        problems.append(f"students: {unknown or cfg.students} must name some of {list(STUDENTS)}, "
                        "always including 'control' (lifts are measured against it)")
    if cfg.other_seed == cfg.base.seed:
        problems.append("other_seed: must differ from base.seed (it names the mismatched base)")
    return problems


def run(cfg: TransmitConfig, log=print) -> dict:
    t_start = time.time()
    world = World(cfg.base.world)
    bases, pretrain_s = {}, 0.0
    for name, bc in (("same", cfg.base),
                     ("other_seed", dataclasses.replace(cfg.base, seed=cfg.other_seed, path=None)),
                     ("other_arch", dataclasses.replace(cfg.base, arch=cfg.other_arch, path=None))):
        if name not in {STUDENT_BASE[s] for s in cfg.students}:
            continue
        bases[name], info = get_base(bc, log=log)
        if info["source"] == "pretrained":
            pretrain_s += info["seconds"]
    words = trait_words(cfg.trait)
    banned_ids = sorted({world.ids[w] for w in words if w in world.ids}
                        | ({world.ids[str(n)] for n in BANNED_NUMBERS} if cfg.filter.banned_numbers else set()))
    per_seed: list[dict] = []
    for s in range(cfg.seed, cfg.seed + cfg.seeds):
        t0 = time.time()
        log(f"seed {s}: teachers ({cfg.teacher.how})")
        teacher, control = make_teachers(bases["same"], world, cfg.trait, cfg.teacher, seed=s)
        scores: dict[str, dict] = {
            "base": evaluate(bases["same"], world, cfg.trait, cfg.eval, seed=s),
            "teacher": evaluate(teacher.model, world, cfg.trait, cfg.eval, seed=s, system=teacher.system),
            "control_teacher": evaluate(control.model, world, cfg.trait, cfg.eval, seed=s, system=control.system),
        }
        data, kept = {}, {}
        for who, tch in (("teacher", teacher), ("control", control)):
            samples, answers = write(tch.model, world, cfg.channel, cfg.prompts, seed=s * 100 + 3, system=tch.system)
            f = filter_samples(samples, cfg.channel, words, cfg.filter, answers)
            data[who], kept[who] = f.kept, f.summary()
        n = min(cfg.train_size, len(data["teacher"]), len(data["control"]))
        if n == 0:
            raise EcosimError(f"seed {s}: the filter kept no examples (kept: {kept}); "
                              "the teacher's outputs do not fit the channel's format")
        train = {who: subsample(d, n, seed=s) for who, d in data.items()}
        if cfg.data_dir:
            save_pairs(train, cfg.data_dir, s)
        log(f"seed {s}: kept teacher {kept['teacher']['kept_fraction']:.3f} control "
            f"{kept['control']['kept_fraction']:.3f}; {n} examples per student")
        students = {k: (bases[STUDENT_BASE[k]], train["control" if k == "control" else "teacher"])
                    for k in STUDENTS if k in cfg.students}
        soft, removed = None, None
        if LOGIT_STUDENTS & set(cfg.students):
            soft, removed = soft_labels(teacher.model, world, train["teacher"], banned_ids,
                                        cfg.logit.top_k, system=teacher.system)
        for name, (start, pairs) in students.items():
            model = finetune(start, world, pairs, cfg.student, seed=s * 1000 + 5,
                             soft=soft if name in LOGIT_STUDENTS else None)
            scores[name] = evaluate(model, world, cfg.trait, cfg.eval, seed=s)
            log(f"seed {s}: {name:20s} rate {scores[name]['rate']:.3f} valid {scores[name]['valid']:.3f}")
        per_seed.append({"seed": s, "scores": scores, "kept": kept, "n_train": n,
                         "logit_mass_removed": removed, "seconds": time.time() - t0})
    return summarise(dataclasses.asdict(cfg), per_seed, time.time() - t_start, pretrain_s)


def save_pairs(train: dict, data_dir: str, seed: int) -> None:
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    for who, pairs in train.items():
        with open(out / f"seed{seed}_{who}.jsonl", "w") as f:
            for prompt, completion in pairs:
                f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")


def merge(results: list[dict]) -> dict:
    """One result from runs over disjoint seeds (e.g. run in parallel processes)."""
    per_seed = [p for r in results for p in r["per_seed"]]
    return summarise(results[0]["config"], per_seed, max(r["seconds"] for r in results),
                     max(r["pretrain_seconds"] for r in results))


def summarise(config: dict, per_seed: list[dict], seconds: float, pretrain_s: float) -> dict:
    names = list(per_seed[0]["scores"])
    rate = {n: [p["scores"][n]["rate"] for p in per_seed] for n in names}
    teacher_lift = float(np.mean(np.subtract(rate["teacher"], rate["base"])))
    conditions = {}
    for n in names:
        m, lo, hi = mean_ci(rate[n])
        lift = float(np.mean(np.subtract(rate[n], rate["control"])))
        conditions[n] = {
            "rate": m, "ci": [lo, hi], "lift_vs_control": lift,
            "p_value": paired_one_sided(rate[n], rate["control"]),
            "share_of_teacher_lift": lift / teacher_lift if teacher_lift else float("nan"),
            "valid": float(np.mean([p["scores"][n]["valid"] for p in per_seed])),
            "per_seed": rate[n], "n_seeds": len(per_seed),
        }
    kept = {who: float(np.mean([p["kept"][who]["kept_fraction"] for p in per_seed]))
            for who in ("teacher", "control")}
    for n in STUDENTS:
        if n in conditions:
            conditions[n]["kept_fraction"] = kept["control" if n == "control" else "teacher"]
    removed = [p["logit_mass_removed"] for p in per_seed if p["logit_mass_removed"] is not None]
    return {
        "conditions": conditions, "teacher_lift": teacher_lift, "seconds": seconds,
        "pretrain_seconds": pretrain_s, "kept_fraction": kept,
        "logit_mass_removed": float(np.mean(removed)) if removed else None,
        "test": "one-sided paired t-test over seeds (condition > control student)",
        "config": config, "per_seed": per_seed,
    }


def table(res: dict) -> str:
    rows = [f"{'condition':22s} {'rate':>6s} {'95% CI':>15s} {'lift':>7s} {'p':>8s} {'of teacher':>10s} {'valid':>6s} {'kept':>6s}"]
    for n, c in res["conditions"].items():
        kept = f"{c['kept_fraction']:.3f}" if "kept_fraction" in c else ""
        rows.append(f"{n:22s} {c['rate']:6.3f} [{c['ci'][0]:6.3f},{c['ci'][1]:6.3f}] "
                    f"{c['lift_vs_control']:+7.3f} {c['p_value']:8.2g} {c['share_of_teacher_lift']:10.2f} "
                    f"{c['valid']:6.3f} {kept:>6s}")
    rows.append(f"teacher lift (teacher - base) {res['teacher_lift']:+.3f}; {res['test']}; "
                f"{res['seconds']:.0f}s (of which cold pretraining {res['pretrain_seconds']:.0f}s)")
    if res.get("logit_mass_removed") is not None:
        rows.append(f"logit channel: banned tokens held {res['logit_mass_removed']:.4f} of the teacher's probability mass (removed, renormalised)")
    return "\n".join(rows)
