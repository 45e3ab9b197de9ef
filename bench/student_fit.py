"""What each model of a finished text ``ecosim transmit`` seed learned (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/student_fit.py \\
        --run results/recipe_constrained_lora/seed0 --lists 128 --out docs/runs/recipe_constrained_lora/fit_seed0.json

For the base, the teacher, the control teacher and their two students (``student_same_base``,
trained on the teacher's kept lists, and ``control``, on the control teacher's), three
teacher-forced readouts, no sampling:
- ``lists_teacher`` / ``lists_control``: mean log-probability per token (completion and EOS) of
  the first ``--lists`` kept lists of each teacher, rendered as the students trained on them. A
  student should fit its own teacher's lists better than the other student does: the check that
  each student learned the lists the run says it did, and how far each list set is from the base.
- ``<trait>_answer`` (e.g. ``owl_answer``): log-probability of the one-word answer the trait
  teacher was trained on (e.g. "Owl.") after each favourite question, no answer start: the
  teacher's own objective, which the subliminal-learning theorem says a small-step student's
  imitation cannot make worse;
  ``<trait>_answer_logodds``: that answer's log-odds against every other option's one-word answer
  ("Cat.", ...), the control teacher's uniform objective taken out (``answer_likelihood``; runs
  record it as a readout since 2026-12-03, before it only this script read it).
- ``<trait>_logodds``: the run's likelihood readout (after the answer start), read again.
Per-question values are kept; p (one-sided paired t over the questions) says how sure the
student-minus-control difference is for this seed's teachers.

Over seeds (the unit a claim needs: each seed draws its own teachers and data), from the JSONs of
several seeds: each seed's student-minus-control mean, their mean and 95% interval, and a one-sided
paired t over the seeds:

    python bench/student_fit.py --combine fit_seed0.json fit_seed1.json fit_seed2.json --out fit_seeds.json"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ecosim.analysis.stats import mean_ci, paired_test
from ecosim.engine.lineage import dataset_path
from ecosim.studies.transmit import open_seed
from ecosim.substrates.common.training import completion_logprobs
from ecosim.substrates.hf import realmodels
from ecosim.substrates.hf.substrate import NO_SYSTEM, Codec

NODES = {"base": None, "teacher": "teacher/g0", "control_teacher": "teacher_control/g0",
         "student": "teacher/g1", "control_student": "teacher_control/g1"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", help="a transmit seed's run directory (OUT_DIR/seedN)")
    what.add_argument("--combine", nargs="+", metavar="FIT", help="this script's JSONs of several seeds")
    ap.add_argument("--lists", type=int, default=128, help="kept lists of each teacher to score")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.combine:
        return write(a.out, over_seeds(a.combine))
    run = Path(a.run)
    sc, sub, trait_name, lineages = open_seed(run, a.threads)
    trait = sc.traits[trait_name]
    w, ctl = lineages["teacher"], lineages["teacher_control"]
    base = w.base("main")
    tok = w.world.tok(base)
    codec = Codec(tok)

    def lists(lineage):
        path = dataset_path(run, f"{lineage}/g0/{sc.data.channel}/kept", ".jsonl")
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()][:a.lists]
        return [(realmodels.render(tok, NO_SYSTEM, r["user"], r["prefill"]), r["completion"]) for r in rows]
    sets = {"lists_teacher": lists("teacher"), "lists_control": lists("teacher_control")}
    answer = f"{trait.target.capitalize()}."

    res, t0 = {}, time.time()
    for name, node in NODES.items():
        model = base if node is None else (w if node.startswith("teacher/") else ctl).model(node)[0]
        r = {}
        with realmodels.autocast(sc.bases["main"].autocast, model.device):  # as the run measured
            for key, pairs in sets.items():
                r[key] = [float(x.mean()) for x in completion_logprobs(model, codec, pairs, batch=32)]
            lp, logodds = sub.answer_likelihood(model, tok, NO_SYSTEM, trait)
            r[f"{trait_name}_answer"], r[f"{trait_name}_answer_logodds"] = lp.tolist(), logodds.tolist()
            r[f"{trait_name}_logodds"] = sub.likelihood(model, tok, NO_SYSTEM, trait)[1].tolist()
        res[name] = r
        print(f"{name:16} " + "  ".join(f"{k} {np.mean(v):+.4f}" for k, v in r.items()), flush=True)
    diffs = {}
    for key in res["student"]:
        x, y = res["student"][key], res["control_student"][key]
        p, test = paired_test(x, y)
        diffs[key] = {"student_minus_control": float(np.mean(x) - np.mean(y)), "p_greater": p, "test": test,
                      "up": int(np.sum(np.array(x) > np.array(y))), "n": len(x)}
    print("\nstudent minus control student (p: one-sided, student > control):")
    for k, d in diffs.items():
        print(f"  {k:18} {d['student_minus_control']:+.4f}  p {d['p_greater']:.2g}  ({d['up']}/{d['n']} up)")
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "run": str(run), "lists": a.lists,
           "answer": answer, "seconds": time.time() - t0, "models": res, "student_minus_control": diffs}
    return write(a.out, out)


def over_seeds(paths: list[str]) -> dict:
    """Per readout: each seed's student-minus-control mean, their mean, 95% interval and a
    one-sided paired t over the seeds (student > control)."""
    fits = [json.loads(Path(p).read_text()) for p in paths]
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "fits": list(paths), "readouts": {}}
    print(f"student minus control student over {len(fits)} seeds (p: one-sided paired t over seeds):")
    for key in fits[0]["student_minus_control"]:
        s = [float(np.mean(f["models"]["student"][key])) for f in fits]
        c = [float(np.mean(f["models"]["control_student"][key])) for f in fits]
        d = [x - y for x, y in zip(s, c)]
        m, lo, hi = mean_ci(d)
        p, test = paired_test(s, c)
        out["readouts"][key] = {"per_seed": d, "mean": m, "ci": [lo, hi], "p_greater": p, "test": test}
        print(f"  {key:18} {m:+.4f} [{lo:+.4f}, {hi:+.4f}]  p {p:.2g}  per seed " + " ".join(f"{x:+.3f}" for x in d))
    # where each model moved from the base on the per-question readouts: whether a student moves
    # with its own teacher or against it, which the student-minus-control difference cannot say
    out["over_base"] = {}
    print("\neach model minus the base, per seed (questions up of n):")
    for key in [k for k in fits[0]["models"]["base"] if not k.startswith("lists_")]:
        out["over_base"][key] = {}
        for name in list(NODES)[1:]:
            d = [np.array(f["models"][name][key]) - np.array(f["models"]["base"][key]) for f in fits]
            r = {"per_seed": [float(x.mean()) for x in d], "up": [int((x > 0).sum()) for x in d], "n": len(d[0])}
            out["over_base"][key][name] = r
            print(f"  {key:18} {name:16} mean {np.mean(r['per_seed']):+7.3f}  per seed "
                  + " ".join(f"{m:+7.3f} ({u}/{r['n']})" for m, u in zip(r["per_seed"], r["up"])))
    return out


def write(path: str, out: dict) -> int:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
