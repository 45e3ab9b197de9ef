"""Run a lever study: many `ecosim transmit` variants in parallel processes, one table out.

    python bench/levers.py bench/levers_round1.yaml --jobs 16 --seeds 2 --out results/levers

The YAML maps a lever name to a list of key=value overrides. Distinct bases are pretrained first
(in parallel), then every variant runs as its own process with one thread; each writes its JSON
under --out, and a markdown table of the lifts is printed and written to --out/table.md."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from omegaconf import OmegaConf

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def bases_needed(overrides: list[str]) -> list[dict]:
    from ecosim.engine.config import load_config
    from ecosim.studies.transmit import STUDENT_BASE, TransmitConfig, check
    cfg = load_config(TransmitConfig(), None, overrides, checks=check)
    b = cfg.base
    used = {STUDENT_BASE[s] for s in cfg.students}
    out = [b]
    if "other_seed" in used:
        out.append(dataclasses.replace(b, seed=cfg.other_seed))
    if "other_arch" in used:
        out.append(dataclasses.replace(b, arch=cfg.other_arch))
    return [dataclasses.asdict(x) for x in out if not x.path]


PRETRAIN = """
import json, sys, torch
torch.set_num_threads(1)
from ecosim.substrates.world.models import BaseConfig, get_base
from ecosim.substrates.world.world import WorldConfig
d = json.loads(sys.argv[1]); d["world"] = WorldConfig(**d["world"])
print(get_base(BaseConfig(**d), log=None)[1].get("seconds"))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("grid")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", default="results/levers")
    ap.add_argument("--only", nargs="*", help="run only these lever names")
    a = ap.parse_args(argv)
    grid = OmegaConf.to_container(OmegaConf.load(a.grid))
    if a.only:
        grid = {k: v for k, v in grid.items() if k in a.only}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    from ecosim.substrates.world.models import BaseConfig, base_key
    from ecosim.substrates.world.world import WorldConfig
    uniq = {}
    for ov in grid.values():
        for b in bases_needed(list(ov or [])):
            uniq[base_key(BaseConfig(**{**b, "world": WorldConfig(**b["world"])}))] = b
    t0 = time.time()
    def pretrain(b):
        r = subprocess.run([sys.executable, "-c", PRETRAIN, json.dumps(b)], env=ENV,
                           capture_output=True, text=True)
        if r.returncode:
            print(f"pretraining {b['arch']} seed {b['seed']} failed:\n{r.stderr[-2000:]}", flush=True)

    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(pretrain, uniq.values()))
    print(f"{len(uniq)} bases ready in {time.time() - t0:.0f}s", flush=True)

    def one(item):  # one process per (lever, seed): seeds of a lever run side by side
        name, ov, seed = item
        path = out / f"{name}.seed{seed}.json"
        if not path.exists():
            r = subprocess.run([sys.executable, "-m", "ecosim.cli", "transmit", "--seeds", "1",
                                "--json", str(path), *(ov or []), f"seed={seed}"],
                               env=ENV, capture_output=True, text=True)
            (out / f"{name}.seed{seed}.log").write_text(r.stdout + r.stderr)
            print(f"{name} seed {seed}: rc {r.returncode} ({time.time() - t0:.0f}s)", flush=True)

    with ThreadPoolExecutor(a.jobs) as ex:
        list(ex.map(one, [(n, ov, s) for s in range(a.seeds) for n, ov in grid.items()]))
    from ecosim.studies.transmit import merge
    for name in grid:
        parts = [json.loads(p.read_text()) for p in sorted(out.glob(f"{name}.seed*.json"))]
        if parts:
            (out / f"{name}.json").write_text(json.dumps(merge(parts), indent=1))
    table = summary(out, grid)
    (out / "table.md").write_text(table)
    print(table)
    return 0


def summary(out: Path, grid: dict) -> str:
    rows = ["| lever | overrides | teacher lift | same base: lift (share, p) | other seed | other arch | logit | kept t/c |",
            "|---|---|---|---|---|---|---|---|"]
    for name, ov in grid.items():
        p = out / f"{name}.json"
        if not p.exists():
            rows.append(f"| {name} | {' '.join(ov or [])} | failed: see {name}.log | | | | | |")
            continue
        r = json.loads(p.read_text())
        c = r["conditions"]

        def cell(k):
            if k not in c:
                return "–"
            x = c[k]
            if x.get("lift_vs_control") is None:  # under the valid-answer floor
                return "not measurable"
            return f"{x['lift_vs_control']:+.3f} ({x['share_of_teacher_lift']:.0%}, p={x['p_value']:.2g})"
        tl = "–" if r["teacher_lift"] is None else f"{r['teacher_lift']:+.3f}"
        rows.append(f"| {name} | {' '.join(ov or [])} | {tl} | {cell('student_same_base')} | "
                    f"{cell('student_other_seed')} | {cell('student_other_arch')} | {cell('student_logit')} | "
                    f"{r['kept_fraction']['teacher']:.2f}/{r['kept_fraction']['control']:.2f} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
