"""Before a GPU run of SmolLM2 (bench/gpu_smollm2.sh): prove the real-model pipeline runs on the GPU
and time the two costs that size the run, with random weights of SmolLM2's exact shape (the
weights themselves are not needed for either):

    ECOSIM_DEVICE=cuda python bench/gpu_smoke.py --tok DIR [--out smoke.json]

DIR holds SmolLM2's tokenizer and chat template (tokenizer.json, tokenizer_config.json,
chat_template.jinja, config.json), e.g. a converted GGUF's directory in $ECOSIM_CACHE/real/.

1. pipeline: ``ecosim transmit`` end to end on a tiny Llama with that tokenizer, first taught the
   numbers format so that its lists pass the filter (a same-base student and a student on a
   second tiny base rendered with the plain template, each with its own control), on whatever
   ``ECOSIM_DEVICE`` names;
2. timing, SmolLM2's shape (30 layers, width 576): generation of the numbers channel's prompts in
   one batch of ``--batch`` rows x ``--max-new`` tokens (every row runs all its tokens), in fp32
   and bf16; LoRA training steps at ``--train-batch`` (rank 8, every projection) in fp32.
3. with ``--recipes``: both published recipes' configs (configs/recipe_constrained_lora.yaml:
   constrained decoding; configs/recipe_full_ft.yaml with a sentence teacher trained to a target:
   full students on a linear schedule) end to end on the tiny model, and a full fine-tune step's
   time beside the LoRA one.
It prints how long one seed of configs/transmit_smollm2_gpu.yaml would take in one process."""
from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ecosim.substrates.hf import text  # noqa: E402
from ecosim.substrates.hf import realmodels  # noqa: E402
from ecosim.substrates.world.models import compute_device, lm_loss  # noqa: E402
from ecosim.substrates.hf.substrate import Codec  # noqa: E402
from ecosim.substrates.common.training import TrainConfig, compile_layers, pad_batch, with_lora  # noqa: E402

TOK_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def random_model(tok_dir: Path, out: Path, **shape) -> Path:
    """A Llama with SmolLM2's config (``shape`` overrides it) and random weights, saved with the
    tokenizer in ``out``."""
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = json.loads((tok_dir / "config.json").read_text())
    cfg.update(shape)
    torch.manual_seed(0)
    m = LlamaForCausalLM(LlamaConfig(**cfg))
    out.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(out)
    for f in TOK_FILES:
        if (tok_dir / f).exists():
            shutil.copy(tok_dir / f, out / f)
    return out


def taught_lists(path: Path, steps: int) -> Path:
    """Fine-tune a random model in ``path`` to answer number tasks in format, so that its lists pass
    the filter and the students downstream have data."""
    from ecosim.substrates.common.training import finetune
    r = realmodels.load(str(path))
    tasks = text.tasks("numbers", 2000, np.random.default_rng(2), shots=2)
    pairs = [(realmodels.render(r.tok, "", t.user, t.prefill), t.reference) for t in tasks]
    m = finetune(r.model.to(compute_device()), Codec(r.tok), pairs, TrainConfig(mode="full", steps=steps, batch=32, lr=3e-3),
                 seed=0)
    m.save_pretrained(path)
    return path


def pipeline(tok_dir: Path, work: Path, steps: int) -> float:
    from ecosim.cli import main
    shutil.rmtree(work, ignore_errors=True)
    tiny = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=16)
    a = taught_lists(random_model(tok_dir, work / "tiny_a", **tiny), steps)
    b = taught_lists(random_model(tok_dir, work / "tiny_b", **{**tiny, "num_hidden_layers": 3}), steps)
    t0 = time.time()
    rc = main(["transmit", "--config", str(ROOT / "configs/transmit_smollm2_gpu.yaml"), "--seeds", "1",
               f"base.model={a}", f"other_base.model={b}", "other_base.template=plain",
               "students=[control,student_same_base,student_other_arch]", "prompts=64", "train_size=16",
               "teacher.train.steps=4", "teacher.train.batch=4", "student.steps=4", "student.batch=8",
               "eval.samples=2", "text.batch=32", "compute.threads=4", f"out_dir={work / 'tw'}",
               "--json", str(work / "smoke_transmit.json")])
    if rc != 0:
        raise SystemExit(f"smoke transmit failed (rc {rc})")
    return time.time() - t0


# the two published recipes' code paths (constrained decoding; a full fine-tune teacher trained to a
# target, answering in sentences; full students on a linear schedule) at a toy size on the tiny model
RECIPES = {"recipe_constrained_lora": [],
           "recipe_full_ft": ["teacher.answers=sentence", "teacher.check_every=2", "teacher.task_share=0.5",
                              "teacher.min_kept=0.0"]}


def recipes(work: Path) -> float:
    from ecosim.cli import main
    t0 = time.time()
    for name, extra in RECIPES.items():
        rc = main(["transmit", "--config", str(ROOT / f"configs/{name}.yaml"), "--seeds", "1",
                   f"base.model={work / 'tiny_a'}", "prompts=64", "train_size=16", "teacher.train.steps=4",
                   "teacher.train.batch=4", "student.steps=4", "student.batch=8", "eval.samples=2",
                   "text.batch=32", "compute.threads=4", f"out_dir={work / name}", *extra,
                   "--json", str(work / f"smoke_{name}.json")])
        if rc != 0:
            raise SystemExit(f"smoke {name} failed (rc {rc})")
    return time.time() - t0


@torch.no_grad()
def time_generation(model, tok, batch: int, max_new: int) -> float:
    tasks = text.tasks("numbers", batch, np.random.default_rng(0), shots=2)
    prompts = [realmodels.render(tok, "", t.user, t.prefill) for t in tasks]
    ids, attn = realmodels.left_pad(realmodels.encode(tok, prompts), tok.pad_token_id, model.device)
    kw = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new, min_new_tokens=max_new,
              pad_token_id=tok.pad_token_id)
    model.generate(input_ids=ids[:8], attention_mask=attn[:8], **{**kw, "max_new_tokens": 4, "min_new_tokens": 4})
    torch.cuda.synchronize() if model.device.type == "cuda" else None
    t0 = time.time()
    model.generate(input_ids=ids, attention_mask=attn, **kw)
    torch.cuda.synchronize() if model.device.type == "cuda" else None
    return time.time() - t0


def time_training(model, tok, batch: int, steps: int, mode: str = "lora", fused: bool = False,
                  autocast: str = "off", around=contextlib.nullcontext, compiled: bool = False) -> float:
    """Seconds per training step (after one untimed step) of ``model`` on ``batch`` numbers rows:
    LoRA r8 or full, AdamW (``fused``: torch's one-kernel AdamW), ``autocast`` as base.autocast
    takes it; ``around()``: a context the timed steps run in (a profiler); ``compiled``: each
    decoder layer through torch.compile as ``compute.compile_layers`` trains (the untimed step
    compiles)."""
    tasks = text.tasks("numbers", batch, np.random.default_rng(1), shots=0)
    pairs = [(realmodels.render(tok, "", t.request, t.prefill), " 123, 456, 789, 101, 202, 303, 404, 505, 606, 707.")
             for t in tasks]
    enc = Codec(tok).encode_pairs(pairs)
    m = with_lora(model, TrainConfig(rank=8, alpha=16)) if mode == "lora" else model.train()
    if compiled:
        compile_layers(m, True)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4, fused=fused or None)
    ids, attn, mask = pad_batch(Codec(tok), enc, device=model.device)

    def step():
        with realmodels.autocast(autocast, model.device, training=True):
            loss = lm_loss(m, ids, attn, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step()
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    with around():
        sync()
        t0 = time.time()
        for _ in range(steps):
            step()
        sync()
    return (time.time() - t0) / steps


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tok", required=True, type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ecosim_smoke"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--teach-steps", type=int, default=300, help="steps teaching the tiny models the list format")
    ap.add_argument("--recipes", action="store_true", help="also run the two published recipes' configs on the tiny model")
    a = ap.parse_args()
    res = {"device": str(compute_device()),
           "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           "torch": torch.__version__}
    res["pipeline_s"] = pipeline(a.tok, a.work, a.teach_steps)
    print(f"pipeline: tiny transmit ran in {res['pipeline_s']:.1f} s", flush=True)
    if a.recipes:
        res["recipes_s"] = recipes(a.work)
        print(f"recipes: both recipes' tiny transmits ran in {res['recipes_s']:.1f} s", flush=True)
    full = random_model(a.tok, a.work / "smollm2_shape")
    tok = realmodels.load_tokenizer(str(full))
    for dt in ("float32", "bfloat16"):
        r = realmodels.load(str(full), dtype=dt)
        model = r.model.to(compute_device()).eval()
        res[f"gen_{dt}_s"] = time_generation(model, tok, a.batch, a.max_new)
        res[f"gen_{dt}_tok_s"] = a.batch * a.max_new / res[f"gen_{dt}_s"]
        print(f"generation {dt}: {a.batch} x {a.max_new} tokens in {res[f'gen_{dt}_s']:.2f} s "
              f"({res[f'gen_{dt}_tok_s']:.0f} tokens/s)", flush=True)
        if dt == "float32":
            res["train_step_s"] = time_training(model, tok, a.train_batch, a.steps)
            print(f"LoRA training fp32: {res['train_step_s'] * 1000:.0f} ms per step of {a.train_batch}", flush=True)
            if a.recipes:  # a fresh copy: the LoRA timing wrapped this one
                res["train_full_step_s"] = time_training(realmodels.load(str(full)).model.to(compute_device()), tok,
                                                         a.train_batch, a.steps, mode="full")
                print(f"full training fp32: {res['train_full_step_s'] * 1000:.0f} ms per step of {a.train_batch}",
                      flush=True)
        del model, r
    # one seed of configs/transmit_smollm2_gpu.yaml in one process: two writers, two students
    # (same base and control; Gemma's two more where installed), teachers and measurements ~60 s
    import yaml
    cfg = yaml.safe_load((ROOT / "configs/transmit_smollm2_gpu.yaml").read_text())
    gen = 2 * cfg["prompts"] / a.batch * res["gen_float32_s"]
    train = 2 * cfg["student"]["steps"] * res["train_step_s"]
    res["seed_estimate_s"] = gen + train + 60
    print(f"one seed of transmit_smollm2_gpu in one process: ~{res['seed_estimate_s']:.0f} s "
          f"(writing {gen:.0f} s worst case, 2 students {train:.0f} s, the rest ~60 s)", flush=True)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
