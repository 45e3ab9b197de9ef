"""Where one training step of SmolLM2's shape goes on a GPU (a report, not a test). On a lent H200 a
full step at batch 16 took 129 ms and a LoRA step 180 ms (docs/bench/gpu_h200_smoke_recipes.json),
far above the arithmetic (about 1 TFLOP a step), so the published recipes' thousands of updates do
not fit a lease. This times the step six ways (full fine-tune with torch's AdamW as the trainer
uses it, with the fused AdamW, under bf16 autocast, LoRA r8, and full and LoRA with each decoder
layer through torch.compile as ``compute.compile_layers`` trains: not yet run on a GPU) and
profiles the plain full step:
the ops that take the CPU's time, the kernels launched per step and the GPU's busy time per step.
Random weights of SmolLM2's exact shape (the weights do not change the cost):

    ECOSIM_DEVICE=cuda python bench/gpu_step_profile.py --tok DIR [--out profile.json]

DIR: SmolLM2's tokenizer and config.json (.dev/smol_tok; bench/gpu_smollm2.sh profile runs it)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_smoke import random_model, time_training  # noqa: E402

from ecosim.substrates.hf import realmodels  # noqa: E402
from ecosim.substrates.world.models import compute_device  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tok", required=True, type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ecosim_profile"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--profile-steps", type=int, default=3)
    a = ap.parse_args(argv)
    dev = compute_device()
    path = random_model(a.tok, a.work / "smollm2_shape")
    tok = realmodels.load_tokenizer(str(path))

    def fresh():
        return realmodels.load(str(path)).model.to(dev)

    res = {"device": str(dev), "gpu": torch.cuda.get_device_name() if dev.type == "cuda" else None,
           "torch": torch.__version__, "batch": a.batch, "steps": a.steps}
    for name, make, kw in (("full", fresh, {}), ("full_fused_adamw", fresh, {"fused": True}),
                           ("full_bf16", fresh, {"autocast": "bf16"}), ("lora", fresh, {"mode": "lora"}),
                           ("full_compiled_layers", fresh, {"compiled": True}),  # compute.compile_layers
                           ("lora_compiled_layers", fresh, {"mode": "lora", "compiled": True})):
        kw = {"mode": "full", **kw}
        try:  # the compile's first steps (untimed: time_training's first) include compiling
            res[f"{name}_ms"] = 1000 * time_training(make(), tok, a.batch, a.steps, **kw)
        except Exception as e:  # a report: say what failed and go on to the next variant
            res[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            print(f"{name}: failed: {res[f'{name}_error']}", flush=True)
            continue
        print(f"{name}: {res[f'{name}_ms']:.1f} ms a step of {a.batch}", flush=True)

    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    prof = torch.profiler.profile(activities=acts)
    res["full_profiled_ms"] = 1000 * time_training(fresh(), tok, a.batch, a.profile_steps, mode="full",
                                                   around=lambda: prof)
    ev = prof.key_averages()
    n = a.profile_steps
    launches = sum(e.count for e in ev if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    # the kernels' own time: an op's row also carries its kernels' time, so sum the kernel rows only
    gpu_us = sum(e.self_device_time_total for e in ev if e.device_type == torch.autograd.DeviceType.CUDA)
    res["kernel_launches_per_step"] = launches / n
    res["gpu_busy_ms_per_step"] = gpu_us / 1000 / n
    res["top_cpu"] = [{"op": e.key, "calls_per_step": e.count / n, "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / n}
                      for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:20]]
    print(f"profiled full step: {res['full_profiled_ms']:.1f} ms; {res['kernel_launches_per_step']:.0f} kernel "
          f"launches and {res['gpu_busy_ms_per_step']:.1f} ms of GPU time a step", flush=True)
    print(ev.table(sort_by="self_cpu_time_total", row_limit=20), flush=True)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
