"""Where the logit channel's effect appears, on one seed of a finished ``ecosim transmit`` run with
logit students (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/logit_sweep.py \\
        --run results/transmit_smollm2_logit/seed0 --supports vocab,top32,list --updates 25,100,300 \\
        --out docs/runs/transmit_smollm2_logit/sweep_seed0.json

The seed's teacher and control teacher are loaded from the run's checkpoints. For each support
of the soft labels (``vocab``: the full next-token distribution; ``topK``: its K most likely
tokens; ``list``: only the tokens a number list can contain, ``text.logit_support: list``) both
teachers write the logits channel again with the run's own seeds, so the lists are the run's (the
base's, with ``text.logit_lists: base``) and only the labels change; trait tokens are masked as in
the run. A logit student and its
control then train from the base exactly as the run's ``student_logit`` and ``control_logit``
(same seeds, examples and settings, ``student`` section of the run), up to the largest update
count, and the likelihood readout (``<trait>_logodds``, ``<trait>_share``) is taken after each
listed number of updates (and, since 2026-12-03, ``<trait>_answer_logodds``, "Owl." with no
answer start): the learning rate is constant, so the model after 25 updates of a
300-update student is the 25-update student. With the run's own support and update count the
numbers repeat the run's ``student_logit`` / ``control_logit`` (a check printed beside the table).

Other students on the same teachers and labels: ``--student KEY=VALUE ...`` changes the run's
student settings (e.g. ``mode=full lr=5e-5``: fully fine-tuned students); the run's own students
are then no check.

How much of a lift is the students' own luck: ``--draws N`` trains N pairs of logit student and
control per support, draw 0 under the run's seed and each other under its own (other examples
of the same kept lists, another order, another LoRA start), the teachers and their labels fixed;
it prints each update count's lifts over the draws with their sd.

Lift = student - control log-odds, averaged over the trait questions; p: one-sided paired t over
the questions (one seed: it says how sure the lift is for this seed's teachers, not over seeds).

Over seeds, from the sweeps of several seeds of one run (each seed's student and control mean
log-odds paired by seed; p: one-sided paired t over seeds, as ``ecosim transmit`` tests):

    python bench/logit_sweep.py --over-seeds docs/runs/X/sweep_seed0.json docs/runs/X/sweep_seed1.json ... \\
        --out docs/runs/X/sweep_seeds.json"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

from ecosim.analysis.stats import mean_ci, paired_test
from ecosim.engine.lineage import derive_seed
from ecosim.studies.transmit import open_seed
from ecosim.store import graph as lg


def support(name: str) -> tuple[str, int | None]:
    """(text.logit_support, data.logit_top_k) of a support's name."""
    if name == "vocab":
        return "vocab", None
    if name == "list":
        return "list", None
    if name.startswith("top") and name[3:].isdigit():
        return "vocab", int(name[3:])
    raise SystemExit(f"--supports: {name!r} is not vocab, list or topK (e.g. top32)")


def student_settings(run_student, changes: list[str]):
    """The run's student settings with ``--student KEY=VALUE`` changes, typed and checked as a
    transmit config's ``logit_student`` is (transmit.changed); a bad key or value exits with one line."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from ecosim.studies.transmit import changed
    keys = [k for k in vars(run_student) if k != "steps"]
    for c in changes:
        key, eq, _ = c.partition("=")
        if not eq or key not in keys:
            raise SystemExit(f"--student {c}: give KEY=VALUE with KEY one of {', '.join(keys)} "
                             "(--updates sets the steps)")
    try:
        cfg, bad = changed(run_student, OmegaConf.to_container(OmegaConf.from_dotlist(changes)), "student")
    except OmegaConfBaseException as e:
        raise SystemExit(f"--student: {str(e).splitlines()[0]}") from None
    if bad:
        raise SystemExit("--student: " + "; ".join(bad))
    return cfg


def lifts(read: dict) -> dict:
    """Each update count's student and control readouts with their lifts and p over questions."""
    for r in read.values():
        r["lift"] = r["student"]["logodds"] - r["control"]["logodds"]
        r["p_questions"], r["test"] = paired_test(r["student"]["per_question"], r["control"]["per_question"])
        r["answer_lift"] = r["student"]["answer_logodds"] - r["control"]["answer_logodds"]
        r["answer_p_questions"] = paired_test(r["student"]["answer_per_question"],
                                              r["control"]["answer_per_question"])[0]
    return read


READOUTS = ("logodds", "answer_logodds")  # <trait>_logodds (after the answer start), <trait>_answer_logodds ("Owl.")


def over_seeds(paths: list[str]) -> list[dict]:
    """For each (support, updates, readout) that every sweep in ``paths`` holds: each seed's lift,
    their mean with a 95% interval over seeds, and the one-sided paired t over seeds (and the
two-sided one, which also flags a loss)."""
    sweeps = [json.loads(Path(p).read_text()) for p in paths]
    runs = {str(Path(sw["run"]).parent) for sw in sweeps}
    if len(runs) > 1:
        raise SystemExit(f"--over-seeds: these sweeps are of different runs ({', '.join(sorted(runs))}): "
                         "give the seeds of one run")
    kinds = {" ".join(sw.get("student_changes", [])) or "the run's own" for sw in sweeps}
    if len(kinds) > 1:
        raise SystemExit("--over-seeds: these sweeps trained different students (--student): "
                         + " | ".join(sorted(kinds)))
    seeds = [Path(sw["run"]).name for sw in sweeps]
    if len(set(seeds)) < len(seeds):
        raise SystemExit(f"--over-seeds: a seed is given twice ({', '.join(seeds)}): each sweep must be another seed")
    cells = {}
    for sw in sweeps:
        for row in sw["results"]:
            for k, r in row["updates"].items():
                cells.setdefault((row["support"], int(k)), []).append(r)
    rows = []
    for (sup, k), rs in sorted(cells.items()):
        if len(rs) < len(sweeps):
            continue  # not run on every seed
        for field in READOUTS:
            if any(field not in r["student"] for r in rs):
                continue  # a sweep older than the readout
            st, co = [r["student"][field] for r in rs], [r["control"][field] for r in rs]
            lifts = [a - b for a, b in zip(st, co)]
            m, lo, hi = mean_ci(lifts)
            p, test = paired_test(st, co)
            rows.append({"support": sup, "updates": k, "readout": field, "lifts": lifts, "lift": m,
                         "ci": [lo, hi], "p": p, "test": test,
                         "p_two_sided": paired_test(st, co, "two-sided")[0]})  # a loss shows here
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--over-seeds", nargs="+", default=None, metavar="SWEEP_JSON",
                    help="summarise finished sweeps of several seeds instead of running one")
    ap.add_argument("--run", help="a transmit seed's run directory (OUT_DIR/seedN)")
    ap.add_argument("--supports", default="vocab,top32,list")
    ap.add_argument("--updates", default="25,100,300")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draws", type=int, default=1,
                    help="student draws per support: draw 0 is the run's student seed, each other draw "
                         "another pair of student and control from the same teachers and lists")
    ap.add_argument("--student", nargs="+", default=[], metavar="KEY=VALUE",
                    help="change the students' settings (the run's student section), e.g. mode=full lr=5e-5")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.draws < 1:
        ap.error(f"--draws {a.draws}: at least 1 (draw 0 is the run's own student)")
    if a.over_seeds:
        rows = over_seeds(a.over_seeds)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"command": " ".join([Path(sys.executable).name] + sys.argv),
                                           "sweeps": a.over_seeds, "rows": rows}, indent=1))
        print(f"{'support':8} {'updates':>7} {'readout':15} {'lift':>7} {'95% CI':>18} {'p':>7} {'2-sided':>7}  per seed")
        for r in rows:
            print(f"{r['support']:8} {r['updates']:7d} {r['readout']:15} {r['lift']:+7.3f} "
                  f"[{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] {r['p']:7.2g} {r['p_two_sided']:7.2g}  "
                  + ", ".join(f"{x:+.3f}" for x in r["lifts"]))
        print(f"wrote {a.out}")
        return 0
    if not a.run:
        ap.error("--run is required (or --over-seeds)")
    run = Path(a.run)
    sc, sub, trait, lineages = open_seed(run, a.threads)
    updates = sorted({int(x) for x in a.updates.split(",")})
    G = lg.load(run)
    writers = {"student": lineages["teacher"], "control": lineages["teacher_control"]}
    base = writers["student"].base("main")
    spec = sc.lineages["student_logit"]
    student = student_settings(spec.student, a.student)
    tok = writers["student"].world.tok(base)
    run_support = (sc.text.logit_support, sc.data.logit_top_k)
    results, t_start = [], time.time()

    def pair(s_sc, data: dict, n: int, seed: int, label: str, row: dict) -> dict:
        """A logit student and its control from the base on ``n`` of their writers' kept lists, both
        under ``seed`` as in the run, read after each of ``updates``; their lifts."""
        read = {}
        for who in ("student", "control"):
            t0 = time.time()
            examples, _ = sub.assemble([(data[who], 1.0)], writers[who].world, s_sc, "logits", seed, size=n)

            def probe(k, model):
                if k in updates:
                    share, lo = sub.likelihood(model, tok, sub.NO_SYSTEM, sc.traits[trait])
                    alo = sub.answer_likelihood(model, tok, sub.NO_SYSTEM, sc.traits[trait])[1]
                    read.setdefault(k, {})[who] = {
                        "logodds": float(lo.mean()), "share": float(share.mean()), "per_question": lo.tolist(),
                        "answer_logodds": float(alo.mean()), "answer_per_question": alo.tolist()}
                    print(f"  {label} {who} after {k} updates: {trait}_logodds {lo.mean():+.3f}, "
                          f"{trait}_answer_logodds {alo.mean():+.3f}", flush=True)
            cfg = copy.copy(student)
            cfg.steps = max(updates)
            sub.train(base, writers[who].world, examples, s_sc, spec, seed, cfg=cfg, probe=probe)  # the probes
            # run inside train, under the base's autocast setting
            row[f"{who}_seconds"] = row.get(f"{who}_seconds", 0.0) + time.time() - t0
        return lifts(read)
    for name in a.supports.split(","):
        s_sc = copy.deepcopy(sc)
        s_sc.text.logit_support, s_sc.data.logit_top_k = support(name)
        row = {"support": name, "updates": {}}
        data = {}
        for who, w in writers.items():
            t0 = time.time()
            model, system = w.model(f"{w.name}/g0")
            seed = derive_seed(sc.seed, "teacher", 0, "write numbers")
            (kept, summary), = sub.write(model, system, w.world, s_sc, "logits", [sc.data.filter], seed,
                                         base=lambda: base)  # text.logit_lists: base writes with it
            data[who] = kept
            row[f"{who}_writer"] = {"kept": len(kept), "logit_mass_removed": summary["logit_mass_removed"],
                                    **({"logit_mass_outside_list": summary["logit_mass_outside_list"]}
                                       if "logit_mass_outside_list" in summary else {}),
                                    "seconds": time.time() - t0}
        n = min(sc.data.train_size, *(len(d) for d in data.values()))
        for d in range(a.draws):
            # draw 0 is the run's own student seed (a control's seeds are its treated twin's); other
            # draws pick other examples from the same kept lists, in another order, from another start
            seed = derive_seed(sc.seed, "student_logit", 1, "train" if d == 0 else f"train, draw {d}")
            ups = pair(s_sc, data, n, seed, f"{name}{' draw ' + str(d) if d else ''}", row)
            if d == 0:
                row["updates"] = ups
            else:
                row.setdefault("draws", {})[d] = ups
        row["examples"] = n
        results.append(row)
        print(f"{name}: " + ", ".join(f"{k} updates lift {r['lift']:+.3f} (p {r['p_questions']:.2g}), "
                                      f"answer lift {r['answer_lift']:+.3f} (p {r['answer_p_questions']:.2g})"
                                      for k, r in sorted(row["updates"].items())), flush=True)
    # the run's own student and control, for the check
    run_nodes = {who: G.nodes[n] for who, n in (("student", "student_logit/g1"), ("control", "student_logit_control/g1"))}
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "run": str(run),
           "run_support": {"logit_support": run_support[0], "top_k": run_support[1]},
           "run_student_updates": spec.student.steps, "student": vars(student),
           "student_changes": a.student,
           "run_logodds": {who: a_[f"{trait}_logodds"] for who, a_ in run_nodes.items()},
           "run_answer_logodds": {who: a_.get(f"{trait}_answer_logodds") for who, a_ in run_nodes.items()},
           "trait": trait, "seconds": time.time() - t_start, "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    for field, p_field, readout in (("lift", "p_questions", f"{trait}_logodds (after the answer start)"),
                                    ("answer_lift", "answer_p_questions", f"{trait}_answer_logodds")):
        print(f"\n{readout}\n{'support':8} " + " ".join(f"{'lift @' + str(k):>14}" for k in updates))
        for row in results:
            print(f"{row['support']:8} " + " ".join(
                f"{row['updates'][k][field]:+7.3f} p{row['updates'][k][p_field]:5.2g}" for k in updates))
    for row in results:
        if "draws" in row:  # the spread of a pair of students over their own draws, teachers fixed
            for k in updates:
                for field, key in (("lift", f"{trait}_logodds"), ("answer_lift", f"{trait}_answer_logodds")):
                    xs = [row["updates"][k][field]] + [d[k][field] for d in row["draws"].values()]
                    print(f"{row['support']} @{k} {key}: draws " + ", ".join(f"{x:+.3f}" for x in xs)
                          + f"; mean {statistics.mean(xs):+.3f}, sd {statistics.stdev(xs):.3f}")
    if a.student:
        print(f"students changed ({' '.join(a.student)}): the run's own students below are no check")
    rl = out["run_logodds"]
    print(f"the run's own ({run_support}, {spec.student.steps} updates): student {rl['student']:+.3f} "
          f"control {rl['control']:+.3f} lift {rl['student'] - rl['control']:+.3f}")
    ra = out["run_answer_logodds"]
    if None not in ra.values():
        print(f"  {trait}_answer_logodds: student {ra['student']:+.3f} control {ra['control']:+.3f} "
              f"lift {ra['student'] - ra['control']:+.3f}")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
