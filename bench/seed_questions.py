"""One finished ``ecosim transmit`` seed, read over its questions (a report, not a test): for each
likelihood readout the run recorded (``lg.READOUTS``), each student (text, logit, other bases)
minus its control student per question, how many questions went up, and a one-sided paired t
over the questions. With one seed this p says how sure the difference is for this seed's
teachers and data, not over seeds (the unit a claim needs; ``ecosim transmit`` tests over
seeds). Reads the seed's ``graph.json`` only:

    python bench/seed_questions.py docs/runs/recipe_full_ft/epyc_sentence/seed0
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ecosim.analysis.stats import paired_test
from ecosim.store import graph as lg


def pairs(ids) -> dict[str, tuple[str, str]]:
    """student -> (its node, its control student's node): the text student learns the teacher's
    lists (``teacher/g1``, its control ``teacher_control/g1``); every other student S has its own
    control lineage ``S_control`` (``studies.transmit.nodes``)."""
    out = {"student_same_base": ("teacher/g1", "teacher_control/g1")}
    for n in sorted(ids):
        s = n.removesuffix("/g1")
        if n.endswith("/g1") and not n.startswith("teacher") and f"{s}_control/g1" in ids:
            out[s] = (n, f"{s}_control/g1")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a transmit seed's run directory (OUT_DIR/seedN)")
    a = ap.parse_args(argv)
    nodes = {n["id"]: n for n in json.loads((Path(a.run) / "graph.json").read_text())["nodes"]}
    trait = nodes["teacher/g0"]["trait"]
    for student, (s, c) in pairs(set(nodes)).items():
        for r in lg.READOUTS:
            key = f"{trait}_{r}_units"
            if key not in nodes[s]:
                continue
            t, u = (np.array(nodes[n][key], float) for n in (s, c))
            p, what = paired_test(t, u)
            print(f"{student} - control, {trait}_{r}: {float((t - u).mean()):+.3f}, "
                  f"{int((t > u).sum())}/{len(t)} questions up, p {p:.2g} ({what} (questions))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
