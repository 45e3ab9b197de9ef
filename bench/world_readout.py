"""Time the world's two trait readouts on the quickstart models: sampled (eval.samples answers per
question) vs exact (the answers' exact probabilities, no sampling), and compare their numbers.

    python bench/world_readout.py [--samples 50] [--threads 2]

Models: the quickstart base (pretrained once, cached under ECOSIM_CACHE, default
~/.cache/ecosim), the prompted owl teacher (the base under the owl persona) and the fine-tuned
owl teacher (quickstart's teacher settings). Each is measured on the owl trait and misalignment.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from ecosim.engine.schema import load_scenario
from ecosim.api import scenario_path
from ecosim.substrates.common.config import TeacherConfig, TraitConfig
from ecosim.substrates.world.models import get_base
from ecosim.substrates.world.traits import evaluate, make_teacher
from ecosim.substrates.world.world import World


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sc = load_scenario(scenario_path("quickstart"), [])
    bc = sc.bases["main"]
    t0 = time.time()
    base, info = get_base(bc, log=print)
    print(f"quickstart base {info['source']} ({time.time() - t0:.1f} s); eval.samples={args.samples}, "
          f"{args.threads} threads, device {base.device}")
    world, owl = World(bc.world), sc.traits["owl"]
    t0 = time.time()
    ft = make_teacher(base, world, owl, TeacherConfig(how="finetune", train=sc.teacher), seed=0).model
    print(f"fine-tuned owl teacher trained in {time.time() - t0:.1f} s\n")
    models = {"base": (base, "none"), "prompted owl teacher": make_teacher(base, world, owl, TeacherConfig(how="prompt"), 0),
              "fine-tuned owl teacher": (ft, "none")}
    sampled = dataclasses.replace(sc.eval, samples=args.samples, readout="sampled")
    exact = dataclasses.replace(sampled, readout="exact")
    print("| model | trait | sampled s | exact s | sampled rate | exact rate | sampled valid | exact valid "
          "| share | logodds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    total = {"sampled": 0.0, "exact": 0.0}
    for name, m in models.items():
        model, system = (m.model, m.system) if hasattr(m, "system") else m
        for trait in (owl, TraitConfig(kind="misalignment")):
            res, secs = {}, {}
            for kind, cfg in (("sampled", sampled), ("exact", exact)):
                t0 = time.time()
                res[kind] = evaluate(model, world, trait, cfg, seed=0, system=system)
                secs[kind] = time.time() - t0
                total[kind] += secs[kind]
            s, e = res["sampled"], res["exact"]
            label = trait.target if trait.kind == "preference" else trait.kind
            print(f"| {name} | {label} | {secs['sampled']:.2f} | {secs['exact']:.2f} | {s['rate']:.4f} "
                  f"[{s['ci'][0]:.4f}, {s['ci'][1]:.4f}] | {e['rate']:.4f} [{e['ci'][0]:.4f}, {e['ci'][1]:.4f}] "
                  f"| {s['valid']:.4f} | {e['valid']:.4f} | {e['share'][0]:.4f} | {e['logodds'][0]:.3f} |")
    print(f"\ntotal: sampled {total['sampled']:.2f} s, exact {total['exact']:.2f} s "
          f"({total['sampled'] / max(total['exact'], 1e-9):.0f}x); per model "
          f"{total['sampled'] / len(models):.2f} s vs {total['exact'] / len(models):.2f} s")
    print(f"(sampled: {args.samples} answers per question, timed with the likelihood readout it now carries; "
          "exact: expectations, around which the sampled rates scatter by sampling error)")


if __name__ == "__main__":
    main()
