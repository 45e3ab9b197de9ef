"""Parallel speed-up and orchestration overhead of the ecosystem engine, in one run:

    python bench/parallel.py [--out results/bench_parallel] [key=value ...]

The same scenario (2 lineages x 2 generations, no controls, owl_chain-sized nodes: 1000 student
steps, 4000 prompts; bases cached first; no report at the end) runs
  1. one lineage after another in this process (compute.ray=false), torch using every core;
  2. one after another with one thread (the same per-task work as each Ray actor does);
  3. in parallel as Ray lineage actors, one CPU and one thread each.
Reported: wall times, speed-up of 3 over 1 (and over 2), and the share of 3's wall time spent
outside model compute: 1 - (busiest actor's summed task seconds) / wall, which charges Ray
start-up, actor start-up (imports), base loading, graph and file writing to orchestration."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ecosim.store import graph as lg
from ecosim.engine.runner import run
from ecosim.engine.schema import load_scenario

SCENARIO = """
name: bench_parallel
generations: 2
bases:
  main: {arch: gpt2, size: tiny, seed: 0}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  a: {trait: owl, control: false}
  b: {trait: owl, control: false}
data: {prompts: 4000, train_size: 3000}
tracking: {wandb: disabled}
report: false
"""


def task_seconds(run_dir: str) -> dict[str, float]:
    """Summed task seconds per lineage (origin, writes and trains, as timed inside the tasks)."""
    G = lg.load(run_dir)
    out: dict[str, float] = {}
    for n, a in G.nodes(data=True):
        if a.get("kind") in ("model", "dataset") and "seconds" in a and "lineage" in a:
            out[a["lineage"]] = out.get(a["lineage"], 0.0) + a["seconds"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/bench_parallel")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.yaml").write_text(SCENARIO)
    cpus = os.cpu_count()
    modes = {"sequential_all_threads": ["compute.ray=false", f"compute.threads={cpus}"],
             "sequential_1_thread": ["compute.ray=false", "compute.threads=1"],
             "ray_parallel": ["compute.ray=true", "compute.threads=1", "compute.cpus_per_lineage=1"]}
    res = {}
    for name, ov in modes.items():
        sc = load_scenario(str(out / "scenario.yaml"), ov + [f"out_dir={out / name}"] + args.overrides)
        t0 = time.time()
        r = run(sc, log=lambda m: print(m, file=sys.stderr, flush=True))
        wall = time.time() - t0
        busy = task_seconds(r["run_dir"])
        res[name] = {"wall_s": round(wall, 1), "task_s_per_lineage": {k: round(v, 1) for k, v in busy.items()},
                     "overhead_share": round(1 - max(busy.values()) / wall, 3) if name == "ray_parallel"
                     else round(1 - sum(busy.values()) / wall, 3)}
        print(f"{name}: {wall:.1f} s", file=sys.stderr)
    seq, seq1, par = (res[k]["wall_s"] for k in modes)
    res["speedup_vs_sequential_all_threads"] = round(seq / par, 2)
    res["speedup_vs_sequential_1_thread"] = round(seq1 / par, 2)
    res["cpus"] = cpus
    (out / "result.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
