"""Where a SmolLM2 lineage's training memory goes: this process's resident size (anonymous and
file-backed) after each stage of a LoRA update, with whole batches and with micro-batches (a
report, not a test; each setting runs in a fresh process, nothing else should run meanwhile):

    ECOSIM_CACHE=~/.cache/ecosim python bench/train_memory.py > docs/bench/train_memory.log

Stages: imports; the base loaded (its weights mapped from the safetensors file, read lazily);
the training copy (reading every weight, so the file's pages become resident); LoRA; three
updates of the batch of ``bench/train_step.py`` (8 examples, bf16 autocast, eager attention, one
thread); the allocator's free memory given back (``engine.memory.release``); the merge."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def status() -> str:
    d = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    gb = {k: int(d[k].split()[0]) / 1e6 for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}
    return (f"resident {gb['VmRSS']:.2f} GB (peak {gb['VmHWM']:.2f}): anonymous {gb['RssAnon']:.2f}, "
            f"file-backed {gb['RssFile']:.2f}")


def one(micro: int | None) -> None:
    print(f"imports      {status()}", flush=True)
    import copy
    import torch
    from ecosim.engine.memory import release
    from ecosim.substrates.common.training import TrainConfig, encode_pairs, lm_loss, pad_batch, passes, with_lora
    from ecosim.substrates.hf import realmodels
    from ecosim.substrates.hf.substrate import Codec
    sys.path.insert(0, str(Path(__file__).parent))
    from train_step import batch
    torch.set_num_threads(1)
    print(f"+ torch      {status()}", flush=True)
    r = realmodels.load("smollm2-135m-instruct")
    tok, model = r.tok, r.model
    print(f"base loaded  {status()}", flush=True)
    enc = encode_pairs(Codec(tok), batch(tok))
    m = copy.deepcopy(model)
    print(f"copy         {status()}", flush=True)
    m = with_lora(m, TrainConfig(mode="lora", rank=8, alpha=16))
    m.get_base_model().set_attn_implementation("eager")
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=5e-4)
    with realmodels.autocast("bf16", "cpu", training=True):
        for step in range(3):
            for part in passes([len(x) for x, _ in enc], micro):
                ids, attn, mask = pad_batch(Codec(tok), [enc[j] for j in part])
                lm_loss(m, ids, attn, mask).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            print(f"update {step + 1}     {status()}", flush=True)
    release()
    print(f"released     {status()}", flush=True)
    m.merge_and_unload()
    print(f"merged       {status()}", flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--one":
        one(None if argv[1] == "none" else int(argv[1]))
        return 0
    for micro in ("none", "600"):
        print(f"## micro-batches: {'whole batch' if micro == 'none' else f'at most {micro} padded tokens'}", flush=True)
        subprocess.run([sys.executable, __file__, "--one", micro], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
