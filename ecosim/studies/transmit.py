"""The single-hop experiment: does a teacher's trait reach students through filtered data?

It runs through the engine (``ecosystem.run``), one one-generation scenario per seed, whose
lineages are the conditions:

- ``teacher``: generation 0 is the trait teacher (fine-tuned or prompted from the ``main`` base),
  generation 1 the student from the same base on its filtered data (``student_same_base``);
  its automatic control ``teacher_control``: the neutral control teacher and the ``control``
  student on its data;
- one lineage per other student (``student_other_seed``, ``student_other_arch``, and on the
  logits channel ``student_logit``, ``student_logit_other_seed``): no generation 0, learns from
  ``teacher``, with its own automatic control learning from ``teacher_control`` from the same
  start base (conditions ``control_other_seed``, ``control_other_arch``, ``control_logit``,
  ``control_logit_other_seed``), against which its lift is measured.

A treated lineage and its control train on the same number of examples (the engine's twin rule),
so every student of a seed trains on min(train_size, teacher kept, control kept) examples. Scores
come from the model nodes of each seed's lineage graph; lifts are paired by seed."""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ecosim.errors import EcosimError, Interrupted
from ecosim.engine import registry
from ecosim.store import graph as lg
from ecosim.substrates.common.bases import BaseConfig
from ecosim.substrates.common.filters import FilterConfig
from ecosim.engine.schema import (ComputeSpec, DataSpec, EdgeSpec, LineageSpec, Scenario, TopologySpec,
                                  TrackingSpec, load_scenario, read_saved)
from ecosim.substrates.common.config import TEACHER, TeacherSpec, teacher_size
from ecosim.analysis.stats import holm, mean_ci, n_tests, paired_test
from ecosim.substrates.hf.text import TextSpec
from ecosim.substrates.common.config import EvalConfig, TeacherConfig, TraitConfig, TrainConfig

# Each student and the base it starts from; logit students learn from soft labels.
STUDENT_BASE = {"control": "same", "student_same_base": "same", "student_other_seed": "other_seed",
                "student_other_arch": "other_arch", "student_logit": "same",
                "student_logit_other_seed": "other_seed"}
STUDENTS = tuple(STUDENT_BASE)
DEFAULT_STUDENTS = STUDENTS[:5]
LOGIT_STUDENTS = {"student_logit", "student_logit_other_seed"}
BASE_NAME = {"same": "main", "other_seed": "other_seed", "other_arch": "other_arch"}
# The control each student's lift is measured against (trained the same way, from the same start
# base, on the control teacher's data).
CONTROL = {"student_same_base": "control", "student_other_seed": "control_other_seed",
           "student_other_arch": "control_other_arch", "student_logit": "control_logit",
           "student_logit_other_seed": "control_logit_other_seed"}


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
    # The cross-architecture student's base in full (e.g. a real model: the teacher on SmolLM2, this
    # student on Gemma); None: ``base`` with arch=other_arch.
    other_base: BaseConfig | None = None
    channel: str = "numbers"
    prompts: int = 10000             # samples each teacher writes
    train_size: int = 8000           # examples per student (capped by the smallest kept set)
    filter: FilterConfig = field(default_factory=FilterConfig)
    # rank-4 LoRA students carried more of the teacher's lift than rank 8 or 16 (docs/levers.md)
    student: TrainConfig = field(default_factory=lambda: TrainConfig(rank=4, alpha=8))
    # Keys of ``student`` that differ for the logit students and their controls, e.g. {mode: full,
    # lr: 5.0e-5}: full students carry more of a logit teacher's lift, while the text students
    # gain only as LoRA (docs/results.md). None (or empty): every student trains as ``student``.
    logit_student: dict[str, Any] | None = None
    logit: LogitConfig = field(default_factory=LogitConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    text: TextSpec = field(default_factory=TextSpec)  # real models: prompting and sampling (substrate_hf)
    seeds: int = 1
    seed: int = 0                    # seeds used: seed, seed+1, ...
    students: list[str] = field(default_factory=lambda: list(DEFAULT_STUDENTS))  # which students to train
    data_dir: str | None = None      # if set, the teacher's and control's filtered datasets are copied here (jsonl)
    # Each seed's run directory is OUT_DIR/seed{N} (graph, metrics, datasets, checkpoints); an
    # existing one with the same config is resumed. None: a temporary directory, removed at the end.
    out_dir: str | None = None
    # In this process by default, every torch thread to each model in turn; ray: true runs the
    # lineages as Ray actors (compute.threads each).
    compute: ComputeSpec = field(default_factory=lambda: ComputeSpec(ray=False, threads=_threads()))


def _threads() -> int:
    import torch
    return torch.get_num_threads()


def trait_name(t: TraitConfig) -> str:
    """The trait's name in the scenario: its metric's name on every model node."""
    return "misalignment" if t.kind == "misalignment" else t.target


def students_of(cfg: TransmitConfig) -> list[str]:
    """The students that run: those asked for; control and student_same_base always (they are
    generation 1 of the teacher's lineage and of its control)."""
    return [s for s in STUDENTS if s in cfg.students or s in ("control", "student_same_base")]


def changed(student: TrainConfig, changes: dict, where: str) -> tuple[TrainConfig | None, list[str]]:
    """``student`` with ``changes`` (key -> value, typed as the config types them), and every
    problem with them, one line each naming ``where``: an unknown key, a value of the wrong type,
    one out of range. None when any is bad."""
    from omegaconf.errors import OmegaConfBaseException
    from ecosim.engine.config import check_fields, unknown_keys
    from ecosim.engine.schema import rules
    keys = [f.name for f in dataclasses.fields(TrainConfig)]
    problems = [m for _, m in unknown_keys(TrainConfig, changes, where)]
    base, good = OmegaConf.structured(student), {}
    for k, v in changes.items():  # one at a time, so that every bad value is named
        if k in keys:
            try:
                OmegaConf.merge(base, {k: v})
                good[k] = v
            except OmegaConfBaseException as e:
                problems.append(f"{where}.{k}: {str(e).splitlines()[0]}")
    out = OmegaConf.to_object(OmegaConf.merge(base, good))
    # the ranges and choices that the changes break (``student``'s own are checked as student.*)
    was = set(check_fields(student, rules(), where))
    problems += [p for p in check_fields(out, rules(), where) if p not in was]
    return (None if problems else out), problems


def student_train(cfg: TransmitConfig, s: str) -> TrainConfig:
    """How student condition ``s`` (and its control) trains: ``student``, with ``logit_student``'s
    changes for the logit students."""
    if s in LOGIT_STUDENTS and cfg.logit_student:
        out, problems = changed(cfg.student, cfg.logit_student, "logit_student")
        if out is None:
            raise EcosimError("; ".join(problems))
        return out
    return cfg.student


def scenario(cfg: TransmitConfig, seed: int) -> Scenario:
    """The one-generation scenario of one seed (see the module docstring)."""
    bases = {"main": cfg.base}
    need = {STUDENT_BASE[s] for s in students_of(cfg)}
    if "other_seed" in need:
        bases["other_seed"] = dataclasses.replace(cfg.base, seed=cfg.other_seed, path=None)
    if "other_arch" in need:
        bases["other_arch"] = cfg.other_base or dataclasses.replace(cfg.base, arch=cfg.other_arch, path=None)
    if cfg.channel == "reasoning":  # world bases that can add (BaseConfig.skills); real models need none
        bases = {n: b if b.model or b.path or "reasoning" in b.skills else
                 dataclasses.replace(b, skills=[*b.skills, "reasoning"]) for n, b in bases.items()}
    name = trait_name(cfg.trait)
    lineages = {"teacher": LineageSpec(base="main", trait=name, origin=cfg.teacher.how, init="base",
                                       student=cfg.student)}
    edges = []
    for s in students_of(cfg):
        if s in ("control", "student_same_base"):
            continue
        lineages[s] = LineageSpec(base=BASE_NAME[STUDENT_BASE[s]], origin="none", init="base",
                                  student=student_train(cfg, s))
        edges.append(EdgeSpec(src="teacher", dst=s, channel="logits" if s in LOGIT_STUDENTS else None))
    return Scenario(
        name="transmit", description="ecosim transmit: one seed of the single-hop experiment", seed=seed,
        generations=1, bases=bases, traits={name: cfg.trait}, lineages=lineages,
        topology=TopologySpec(chain=["teacher"], edges=edges),
        data=DataSpec(channel=cfg.channel, prompts=cfg.prompts, train_size=cfg.train_size, filter=cfg.filter,
                      logit_top_k=cfg.logit.top_k),
        teacher=TeacherSpec(**dataclasses.asdict(cfg.teacher.train),
                            **{k: getattr(cfg.teacher, k) for k in TEACHER}),  # the keys both share
        eval=cfg.eval, text=cfg.text, compute=cfg.compute, tracking=TrackingSpec(wandb="disabled"), report=False)


def nodes(cfg: TransmitConfig) -> dict[str, str]:
    """condition -> model node of a seed's lineage graph."""
    out = {"teacher": "teacher/g0", "control_teacher": "teacher_control/g0",
           "control": "teacher_control/g1", "student_same_base": "teacher/g1"}
    for s in students_of(cfg):
        if s not in out:
            out[CONTROL[s]] = f"{s}_control/g1"
            out[s] = f"{s}/g1"
    return out


def _rename(problem: str, cfg: TransmitConfig) -> str:
    """A scenario's key path in transmit's terms."""
    for old, new in (("bases.other_arch.arch", "other_arch"),
                     ("bases.other_arch.", "other_base." if cfg.other_base else "base."),
                     ("bases.other_seed.", "base."), ("bases.main.", "base."),
                     (f"traits.{trait_name(cfg.trait)}: ", "")):
        problem = problem.replace(old, new)
    return problem


def check(cfg: TransmitConfig) -> list[str]:
    """Every semantic problem with ``cfg``, one line each (load_config reports them together).
    Bases and the trait are checked by the substrate that will run them."""
    from ecosim.engine.config import SEED, check_fields
    from ecosim.engine.schema import merged, rule, rules as schema_rules
    # The scenario schema's ranges and choices (schema.rules()) for the sections shared with it
    # (student, teacher, base, eval, text, ...), and the same rules for transmit's own fields.
    rules = {**schema_rules(), TransmitConfig: {"prompts": rule(DataSpec, "prompts"), "train_size": rule(DataSpec, "train_size"),
                                                "seeds": rule(LineageSpec, "replicas"), "seed": SEED, "other_seed": SEED},
             LogitConfig: {"top_k": rule(DataSpec, "logit_top_k")}}
    problems = check_fields(cfg, rules)
    if cfg.teacher.how == "finetune":
        problems += teacher_size("teacher.train", cfg.teacher.train)
    n_fields = len(problems)
    unknown = [s for s in cfg.students if s not in STUDENTS]
    if unknown or "control" not in cfg.students:
        problems.append(f"students: {unknown or cfg.students} must name some of {list(STUDENTS)}, "
                        "always including 'control' (lifts are measured against it)")
    asked = set(cfg.students)
    if cfg.other_seed == cfg.base.seed and asked & {"student_other_seed", "student_logit_other_seed"}:
        problems.append("other_seed: must differ from base.seed (it names the mismatched base)")
    if cfg.logit.top_k is not None and cfg.logit.top_k < 1:
        problems.append(f"logit.top_k: must be >= 1, or null for the full vocabulary (got {cfg.logit.top_k})")
    logit_bad = []
    if cfg.logit_student:
        logit_bad = changed(cfg.student, cfg.logit_student, "logit_student")[1]
        if not asked & LOGIT_STUDENTS:
            logit_bad.append(f"logit_student: changes the logit students, but students {cfg.students} has none "
                             f"(add some of {sorted(LOGIT_STUDENTS)}, or leave logit_student out)")
        problems += logit_bad
    # the rest is checked on the scenario, whose logit students train as `student` where their changes are bad
    sc = scenario(dataclasses.replace(cfg, logit_student=None) if logit_bad else cfg, cfg.seed)
    try:
        sub = registry.of(sc)
    except EcosimError as e:
        return problems + [_rename(str(e), cfg)]
    text = [c for c in sub.CHANNELS if c != "logits"]
    if cfg.channel not in text:
        problems.append(f"channel: {cfg.channel!r} is not one of {text}")
    if asked & LOGIT_STUDENTS:
        if "logits" not in sub.CHANNELS:
            problems.append(f"students: {sorted(asked & LOGIT_STUDENTS)} need the logits channel, which "
                            f"this base's substrate ({registry.entry(sc).name}) lacks")
        elif cfg.channel in text and cfg.channel != "numbers":
            problems.append(f"students: the logit students learn soft labels on number completions; with "
                            f"channel={cfg.channel} leave out {sorted(asked & LOGIT_STUDENTS)}")
    if cfg.base.model and asked & {"student_other_seed", "student_logit_other_seed"}:
        problems.append("students: student_other_seed needs a world base (a real model has one set of weights); "
                        "use other_base for a student from another model")
    more = [_rename(p, cfg).replace("data.logit_top_k", "logit.top_k") for p in sub.check(sc)]
    problems = merged(problems[:n_fields], problems[n_fields:] + more)
    return list(dict.fromkeys(problems))


# ----------------------------------------------------------------- the run
def run(cfg: TransmitConfig, log=print) -> dict:
    from ecosim.engine.schema import check as check_scenario
    t_start = time.time()
    first = scenario(cfg, cfg.seed)
    bad = check_scenario(first)
    if bad:  # transmit's own check passed, so this is a bug in building the scenario
        raise EcosimError("transmit built an invalid scenario:\n  " + "\n  ".join(bad))
    sub = registry.of(first)
    pretrain_s = sub.prepare(first, set(first.bases), log)
    root = Path(cfg.out_dir) if cfg.out_dir else Path(tempfile.mkdtemp(prefix="ecosim-transmit-"))
    try:
        per_seed = [run_seed(cfg, s, root / f"seed{s}", log) for s in range(cfg.seed, cfg.seed + cfg.seeds)]
    finally:
        if not cfg.out_dir:
            shutil.rmtree(root, ignore_errors=True)
    return summarise(dataclasses.asdict(cfg), per_seed, time.time() - t_start, pretrain_s)


def run_seed(cfg: TransmitConfig, seed: int, run_dir: Path, log=print) -> dict:
    """One seed through the engine; its scores read back from the lineage graph."""
    from ecosim.engine.runner import run as run_scenario
    t0 = time.time()
    sc = scenario(cfg, seed)
    resume = (run_dir / "config.yaml").exists()
    if resume and not same_run(read_saved(str(run_dir / "config.yaml")), sc):
        raise EcosimError(f"out_dir: {run_dir} holds a run with another config; remove it or choose another out_dir")
    if resume:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(sc)))  # this run's compute
    log(f"seed {seed}: {'resuming' if resume else 'running'} {run_dir}")
    try:
        run_scenario(sc, run_dir=run_dir, resume=resume, log=log)
    except Interrupted:  # the engine's message names `ecosim run --resume`; transmit resumes itself
        again = (f"run the same ecosim transmit command again (out_dir={cfg.out_dir}): finished seeds and nodes "
                 "are kept" if cfg.out_dir else "nothing is kept without out_dir=DIR")
        raise Interrupted(f"interrupted in seed {seed}: {again}") from None
    if cfg.data_dir:
        out, suffix = Path(cfg.data_dir), registry.of(sc).DATASET_SUFFIX
        out.mkdir(parents=True, exist_ok=True)
        for who, lin in (("teacher", "teacher"), ("control", "teacher_control")):
            shutil.copyfile(run_dir / "datasets" / lin / "g0" / cfg.channel / f"kept{suffix}",
                            out / f"seed{seed}_{who}{suffix}")
    res = read_seed(cfg, seed, run_dir, time.time() - t0)
    log(f"seed {seed}: kept teacher {res['kept']['teacher']['kept_fraction']:.3f} control "
        f"{res['kept']['control']['kept_fraction']:.3f}; {res['n_train']} examples per student; "
        + ", ".join(f"{c} {s['rate']:.3f}" for c, s in res["scores"].items()))
    return res


def same_run(saved: Scenario, sc: Scenario) -> bool:
    """Whether a seed's saved scenario (its run directory's config.yaml as ``read_saved`` reads it:
    an older ecosim's keys upgraded, later ones defaulted) is the experiment ``sc``. How it was
    computed (threads or Ray) and where a base's model file lay (a run made on a GPU machine names
    its GGUF in that machine's /tmp) do not make it another: a model is its file's name
    (``model_name``)."""
    name = getattr(registry.of(sc), "model_name", str)  # a substrate without model files: as set

    def science(s: Scenario):
        d = OmegaConf.to_container(OmegaConf.structured(s))
        d.pop("compute", None)
        for b in d["bases"].values():
            if b.get("model"):
                b["model"] = name(b["model"])
        return d
    return science(saved) == science(sc)


def read_seed(cfg: TransmitConfig, seed: int, run_dir: Path, seconds: float) -> dict:
    """A finished seed's result (scores, kept fractions, training size) from its lineage graph:
    what ``run_seed`` returns, and how seeds finished elsewhere join a table (``from_runs``)."""
    G = lg.load(run_dir)
    name = trait_name(cfg.trait)
    scores = {"base": _score(G.nodes["base:main"], name)}  # the engine measured it as it is
    for cond, n in nodes(cfg).items():
        a = G.nodes[n]
        kept = [G.nodes[u]["kept_fraction"] for u, _, e in G.in_edges(n, data=True)
                if e["kind"] == "trained_on" and "kept_fraction" in G.nodes[u]]
        scores[cond] = _score(a, name)
        if kept:
            scores[cond]["kept_fraction"] = float(np.mean(kept))
            scores[cond]["train_size"] = a["train_size"]
    ds = {who: G.nodes[f"{lin}/g0/{cfg.channel}/kept"] for who, lin in (("teacher", "teacher"),
                                                                        ("control", "teacher_control"))}
    kept = {who: {k: d[k] for k in ("total", "kept_fraction", "rejected")} | {"kept": d["size"]}
            for who, d in ds.items()}
    logit = G.nodes.get("teacher/g0/logits/kept", {}).get("logit_mass_removed")
    return {"seed": seed, "scores": scores, "kept": kept, "n_train": G.nodes["teacher/g1"]["train_size"],
            "logit_mass_removed": logit,
            "controls": {c: CONTROL.get(c, c if c in CONTROL.values() else "control") for c in scores},
            "seconds": seconds, "run_dir": str(run_dir) if cfg.out_dir else None}


def from_runs(cfg: TransmitConfig, run_dirs: list[Path]) -> dict:
    """The result over finished seeds' run directories (OUT_DIR/seedN of runs of ``cfg``, e.g. seeds
    run in different sessions or on different machines), each checked to be a run of ``cfg``; a
    seed's seconds are its tasks' (from the graph)."""
    per_seed = []
    for d in map(Path, run_dirs):
        if not (d / "config.yaml").is_file() or not (d / "graph.json").is_file():
            raise EcosimError(f"--from-runs {d}: not a seed's run directory (no config.yaml and graph.json)")
        saved = read_saved(str(d / "config.yaml"))
        seed = saved.seed
        if not same_run(saved, scenario(cfg, seed)):
            raise EcosimError(f"--from-runs {d}: a run of another config than this one (seed {seed})")
        G = lg.load(d)
        unfinished = [n for n in nodes(cfg).values() if G.nodes.get(n, {}).get("status") != "done"]
        if unfinished:
            raise EcosimError(f"--from-runs {d}: seed {seed} is not finished ({', '.join(unfinished)}): "
                              "run its ecosim transmit command again to finish it")
        per_seed.append(read_seed(cfg, seed, d, sum(G.nodes[n].get("seconds") or 0 for n in G)))
    seeds = [p["seed"] for p in per_seed]
    if len(set(seeds)) < len(seeds):
        raise EcosimError(f"--from-runs: two run directories hold the same seed ({sorted(seeds)})")
    return summarise(dataclasses.asdict(cfg), per_seed, sum(p["seconds"] for p in per_seed), 0.0)


def open_seed(run_dir, threads: int = 2):
    """A finished seed's run directory (OUT_DIR/seedN), to read its models again (``bench/``):
    (scenario, substrate, trait name, {"teacher": lineage, "teacher_control": lineage}). Each
    lineage loads that lineage's models from the run's checkpoints (``Lineage.model``) and its base."""
    from ecosim.engine.lineage import Lineage  # imported where used, as run_seed does
    sc = load_scenario(str(Path(run_dir) / "config.yaml"))
    trait = next(iter(sc.traits))
    # only checkpoints and bases are read, so the treated lineage's spec and key serve both
    lineages = {name: Lineage(name, sc, sc.lineages["teacher"], "teacher", trait, str(run_dir),
                              threads=threads, seed=sc.seed) for name in ("teacher", "teacher_control")}
    return sc, registry.of(sc), trait, lineages


def _score(a: dict, name: str) -> dict:
    """A measured node's rate of trait ``name``, its interval, valid-answer rate (None: the
    substrate measures none, and the rate is always measurable) and readouts."""
    return {"rate": a[name], "ci": [a.get(f"{name}_ci_lo", a[name]), a.get(f"{name}_ci_hi", a[name])],
            "valid": a.get(f"{name}_valid"), "readouts": _readouts(a, name)}


def _readouts(metrics: dict, name: str) -> dict:
    """The trait's likelihood readouts a substrate measured (``<trait>_<r>`` for r in ``lg.READOUTS``)."""
    return {f"{name}_{r}": float(metrics[f"{name}_{r}"]) for r in lg.READOUTS if f"{name}_{r}" in metrics}


def merge(results: list[dict]) -> dict:
    """One result from runs over disjoint seeds (e.g. run in parallel processes)."""
    per_seed = [p for r in results for p in r["per_seed"]]
    return summarise(results[0]["config"], per_seed, max(r["seconds"] for r in results),
                     max(r["pretrain_seconds"] for r in results))


NOT_MEASURABLE = f"not measurable (valid answers < {lg.VALID_FLOOR:g})"
TEACHERS = ("teacher", "control_teacher")  # generation 0: measured against the base, untested


def _measurable(valid: list | None, n: int) -> list[bool]:
    """Per seed: whether a rate with these valid-answer rates can be read (``graph.measurable``:
    the valid-answer floor; NaN valid is not measurable). No valid rate (None, or readouts): can."""
    valid = valid or [None] * n
    return [lg.measurable({} if v is None else {"r_valid": v}, "r") for v in valid]


def _conditions(values: dict[str, list[float]], controls: dict[str, str],
                valid: dict[str, list[float]] | None = None) -> dict:
    """Per condition: rate and 95% CI over the seeds where it is measurable (``valid`` per seed
    at least graph.VALID_FLOOR; NaN is not). Only the students (those with a control student,
    ``CONTROL``) carry a lift over their control student paired by seed (over the seeds where
    both are measurable), its one-sided paired t-test (``p_value``, ``test``), its Holm-adjusted
    p over this table's tests (``p_holm``) and its share of the teacher's lift. The teacher and the
    control teacher carry their lift over the base (``lift_vs_base``, no test); the base and the
    control students their rate and CI only."""
    ok = {n: _measurable((valid or {}).get(n), len(v)) for n, v in values.items()}

    def paired(a: str, b: str) -> tuple[list[float], list[float]]:
        i = [k for k in range(len(values[a])) if ok[a][k] and ok[b][k]]
        return [values[a][k] for k in i], [values[b][k] for k in i]

    t, b = paired("teacher", "base") if {"teacher", "base"} <= set(values) else ([], [])
    teacher_lift = float(np.mean(np.subtract(t, b))) if t else float("nan")
    out = {}
    for n, v in values.items():
        keep = [x for x, k in zip(v, ok[n]) if k]
        m, lo, hi = mean_ci(keep) if keep else (None, None, None)
        row = {"rate": m, "ci": [lo, hi], "per_seed": list(v), "n_seeds": len(v), "measurable_seeds": len(keep)}
        if not keep:
            row["note"] = NOT_MEASURABLE
        elif len(keep) < len(v):
            row["note"] = f"rate over {len(keep)} of {len(v)} seeds; the others {NOT_MEASURABLE}"
        c = controls.get(n, CONTROL[n]) if n in CONTROL else None
        if c is not None and c not in values and "control" in values:
            # a record from before students had their own controls: the shared control student
            c = "control"
            row["control_note"] = f"no {CONTROL[n]} in this record: lift over the shared control student"
        if c in values:
            x, y = paired(n, c)
            row.update(control=c, pairs=len(x))
            if not x:
                row.update(lift_vs_control=None, lift_ci=None, p_value=None, share_of_teacher_lift=None,
                           test=f"{n} or {c} {NOT_MEASURABLE}")
            else:
                d = np.subtract(x, y)
                lift = float(d.mean())
                p, test = paired_test(x, y)
                row.update(lift_vs_control=lift, lift_ci=list(mean_ci(d)[1:]) if len(d) > 1 else None,
                           p_value=p, test=test.replace("pairs", "seeds"),
                           # the table tests a gain; a student sure to end BELOW its control is named too
                           p_two_sided=paired_test(x, y, "two-sided")[0],
                           share_of_teacher_lift=lift / teacher_lift if teacher_lift else float("nan"))
        elif n in TEACHERS and "base" in values:
            x, y = paired(n, "base")
            row.update(lift_vs_base=float(np.mean(np.subtract(x, y))) if x else None)
        out[n] = row
    tested = [n for n, r in out.items() if "p_value" in r]
    for n, q in zip(tested, holm([out[n]["p_value"] for n in tested])):
        out[n]["p_holm"] = None if out[n]["p_value"] is None else q  # NaN: no test (zero variance, one seed)
    return out


def _tests(conditions: dict) -> dict:
    """How many tests a table holds and how its p-values are adjusted."""
    k = n_tests([c.get("p_value") for c in conditions.values()])
    return {"count": k, "adjusted": f"Holm over the {k} test(s) of this table (p_holm)"}


def summarise(config: dict, per_seed: list[dict], seconds: float, pretrain_s: float) -> dict:
    names = list(per_seed[0]["scores"])
    controls = per_seed[0].get("controls", {})
    rate = {n: [p["scores"][n]["rate"] for p in per_seed] for n in names}
    valid = {n: [p["scores"][n].get("valid") for p in per_seed] for n in names}
    conditions = _conditions(rate, controls, valid)
    for n, c in conditions.items():
        c["valid"] = None if None in valid[n] else float(np.mean(valid[n]))
        if "kept_fraction" in per_seed[0]["scores"][n]:
            c["kept_fraction"] = float(np.mean([p["scores"][n]["kept_fraction"] for p in per_seed]))
    readouts = {}
    for r in per_seed[0]["scores"]["teacher"].get("readouts", {}):
        vals = {n: [p["scores"][n]["readouts"][r] for p in per_seed] for n in names
                if all(r in p["scores"][n].get("readouts", {}) for p in per_seed)}
        if {"base", "teacher", "control"} <= set(vals):
            rc = _conditions(vals, controls)
            readouts[r] = {"conditions": rc, "teacher_lift": rc["teacher"]["lift_vs_base"], "tests": _tests(rc)}
    kept = {who: float(np.mean([p["kept"][who]["kept_fraction"] for p in per_seed]))
            for who in ("teacher", "control")}
    removed = [p["logit_mass_removed"] for p in per_seed if p["logit_mass_removed"] is not None]
    return {
        "conditions": conditions, "teacher_lift": conditions["teacher"]["lift_vs_base"], "seconds": seconds,
        "pretrain_seconds": pretrain_s, "kept_fraction": kept,
        "logit_mass_removed": float(np.mean(removed)) if removed else None,
        "test": "one-sided paired t-test over seeds, each student > its own control student (Holm-adjusted "
                "over the students); the teachers' lift is over the base (lift_vs_base, untested); the base "
                "and the control students: rate and interval only",
        "tests": _tests(conditions), "valid_floor": lg.VALID_FLOOR,
        **({"readouts": readouts} if readouts else {}),
        "config": config, "per_seed": per_seed,
    }


def _f(x, fmt: str, width: int) -> str:
    """x formatted with ``fmt``, right-aligned in ``width``; '–' where there is none (None)."""
    return ("–" if x is None else format(x, fmt)).rjust(width)


def _rows(conditions: dict, with_valid: bool = True) -> list[str]:
    """The condition table; readouts (with_valid False) have no valid or kept columns. A lift is
    over the control student (vs control) for students, over the base (vs base) for the teachers."""
    w = max([22] + [len(n) for n in conditions])
    tail = f" {'valid':>6s} {'kept':>6s}" if with_valid else ""
    rows = [f"{'condition':{w}s} {'rate':>6s} {'95% CI':>15s} {'vs':>7s} {'lift':>7s} {'p':>8s} {'p Holm':>8s} "
            f"{'of teacher':>10s}" + tail]
    for n, c in conditions.items():
        kept = f"{c['kept_fraction']:.3f}" if "kept_fraction" in c else ""
        if c["rate"] is None:
            rate = f"{'n/m':>6s} {'':>15s}"
        else:
            rate = f"{c['rate']:6.3f} [{c['ci'][0]:6.3f},{c['ci'][1]:6.3f}]"
        if "control" in c:
            vs, lift = "control", c["lift_vs_control"]
        elif "lift_vs_base" in c:
            vs, lift = "base", c["lift_vs_base"]
        else:
            vs, lift = "–", None
        rows.append(f"{n:{w}s} {rate} {vs:>7s} {_f(lift, '+.3f', 7)} {_f(c.get('p_value'), '.2g', 8)} "
                    f"{_f(c.get('p_holm'), '.2g', 8)} {_f(c.get('share_of_teacher_lift'), '.2f', 10)}"
                    + (f" {_f(c['valid'], '6.3f', 6)} {kept:>6s}" if with_valid else ""))
    notes = [f"{n}: {c[k]}" for n, c in conditions.items() for k in ("note", "control_note") if k in c]
    notes += [f"{n}: {c['test']}" for n, c in conditions.items()
              if "test" in c and not c["test"].startswith("one-sided")]
    notes += [f"{n}: below its control, two-sided p {c['p_two_sided']:.2g}" for n, c in conditions.items()
              if c.get("lift_vs_control") is not None and c["lift_vs_control"] < 0 and c.get("p_two_sided", 1) < 0.05]
    if notes:
        rows.append("n/m = not measurable; " + "; ".join(notes))
    return rows


def _tests_line(tests: dict) -> str:
    return f"{tests['count']} test(s) in this table; p Holm: {tests['adjusted']}"


def table(res: dict) -> str:
    """The printed table: the sampled rate's conditions, then each likelihood readout's. Where no
    student's sampled rate is measurable (real models: few sampled answers name an option), the
    readouts lead and one line says why, as the report does (analysis.report.lead_trait)."""
    rows = _rows(res["conditions"])
    tests = res.get("tests") or _tests(res["conditions"])
    tl = res["teacher_lift"]
    rows.append(f"teacher lift (teacher - base) {_f(tl, '+.3f', 0)}; {res['test']}; {_tests_line(tests)}; "
                f"{res['seconds']:.0f}s (of which cold pretraining {res['pretrain_seconds']:.0f}s)")
    own = [f"{n} vs {c['control']}" for n, c in res["conditions"].items()
           if c.get("control", "control") not in ("control", n)]
    if own:
        rows.append("lifts against their own controls (same start base, the control teacher's data): " + ", ".join(own))
    if res.get("logit_mass_removed") is not None:
        rows.append(f"logit channel: banned tokens held {res['logit_mass_removed']:.4f} of the teacher's probability mass (removed, renormalised)")
    reads = []
    for r, rd in res.get("readouts", {}).items():
        reads += ["", f"readout {r}:"] + _rows(rd["conditions"], with_valid=False)
        reads.append(f"teacher lift (teacher - base) {_f(rd['teacher_lift'], '+.3f', 0)}; "
                     f"{_tests_line(rd.get('tests') or _tests(rd['conditions']))}")
    students = [c for c in res["conditions"].values() if "control" in c]
    if reads and students and all(c["rate"] is None for c in students):
        why = (f"The sampled rate is not measurable for any student (under {lg.VALID_FLOOR:g} of their sampled "
               "answers name an option), so the likelihood readouts lead; the sampled table is last.")
        return "\n".join([why] + reads + ["", "sampled answers:"] + rows)
    return "\n".join(rows + reads)
