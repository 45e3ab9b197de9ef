"""Where a real model's measurement spends its time, and the one-word answer readout against
teacher-forcing (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/measure_parts.py \\
        --run results/transmit_smollm2_logit_v6/seed1 --out docs/bench/measure_parts.json

For the base and each named node of a finished real-model ``ecosim transmit`` seed, the seconds of
each part of ``measure`` as the run calls it (sampled one-word answers, the answer-start
likelihood, the one-word answer likelihood, misalignment, held-out loss and drift; under the
base's autocast setting), and ``answer_likelihood`` computed again by teacher-forcing every
question + answer pair (``completion_logprobs``, how it was computed before 2026-12-03): its
seconds and the largest per-question difference from the cached-prompt readout."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ecosim.studies.transmit import open_seed
from ecosim.substrates.hf import realmodels, text
from ecosim.substrates.hf import substrate as H


def timed(f):
    t0 = time.time()
    r = f()
    return r, time.time() - t0


def teacher_forced(model, tok, trait):
    """``answer_likelihood`` as it was: every question + one-word answer (+ EOS) pair forwarded whole."""
    opts, qs = H.options(trait.category), text.favourite_questions(trait.category)
    ti = opts.index(trait.target)
    pairs = [(realmodels.render(tok, H.NO_SYSTEM, q, ""), text.favourite_answer(trait.category, o, "word"))
             for q in qs for o in opts]
    lp = np.array([float(x.sum()) for x in H.completion_logprobs(model, H.Codec(tok), pairs, batch=48)])
    lp = lp.reshape(len(qs), len(opts))
    return lp[:, ti], H.option_logodds(lp, ti)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a real-model transmit seed's run directory (OUT_DIR/seedN)")
    ap.add_argument("--nodes", nargs="*", default=["teacher/g1"], help="nodes besides the base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    sc, _, trait_name, lineages = open_seed(a.run, a.threads)
    w, trait = lineages["teacher"], sc.traits[trait_name]
    base = w.base("main")
    tok = w.world.tok(base)
    qs = text.favourite_questions(trait.category)
    heldout = [(realmodels.render(tok, H.NO_SYSTEM, e["user"], e["prefill"]), e["completion"]) for e in H.heldout(sc)]
    res = {}
    for node in [None] + a.nodes:
        model = base if node is None else lineages[node.split("/")[0]].model(node)[0]
        r = {}
        with realmodels.autocast(sc.bases["main"].autocast, model.device):
            prompts = [realmodels.render(tok, H.NO_SYSTEM, q) for q in qs for _ in range(sc.eval.samples)]
            _, r["sampled_answers_s"] = timed(lambda: realmodels.generate(
                model, tok, prompts, 8, 1.0, seed=0, batch=sc.text.batch, stop=["\n"]))
            _, r["likelihood_s"] = timed(lambda: H.likelihood(model, tok, H.NO_SYSTEM, trait))
            (lp, lo), r["answer_likelihood_s"] = timed(lambda: H.answer_likelihood(model, tok, H.NO_SYSTEM, trait))
            _, r["misalignment_s"] = timed(lambda: H.misalignment(model, tok, H.NO_SYSTEM, sc))
            _, r["loss_and_drift_s"] = timed(lambda: H.loss_and_drift(model, base, H.Codec(tok), heldout, batch=16))
            (lp0, lo0), r["answer_likelihood_teacher_forced_s"] = timed(lambda: teacher_forced(model, tok, trait))
        r["answer_logodds"], r["answer_logodds_teacher_forced"] = float(lo.mean()), float(lo0.mean())
        r["max_abs_diff_logprob"] = float(np.abs(lp - lp0).max())
        r["max_abs_diff_logodds"] = float(np.abs(lo - lo0).max())
        res[node or "base"] = r
        print(f"{node or 'base':12} " + "  ".join(f"{k} {v:.3g}" for k, v in r.items()), flush=True)
    out = {"command": " ".join([Path(sys.executable).name] + sys.argv), "run": a.run, "threads": a.threads,
           "models": res}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
