"""bf16 autocast against fp32 on SmolLM2-135M-Instruct, on the same batch (a report, not a test):

    ECOSIM_CACHE=~/.cache/ecosim python bench/autocast_parity.py [--steps 5] [--out FILE]

Eight numbers-channel prompts (2 worked examples each) with their reference answers cut to 29
tokens: the completion loss of the base model in fp32 and under ``bases.X.autocast: bf16``
(``realmodels.autocast``), then ``--steps`` LoRA updates (rank 8, lr 1e-3, the same LoRA
initialisation) on that batch in each mode, the loss before each update. Whether bf16 matmuls
change what a model learns, beside the end-to-end comparison of a transmit seed."""
import argparse
import copy
import json
import sys

import numpy as np
import torch

from ecosim.substrates.common.training import TrainConfig, lm_loss, pad_batch, with_lora
from ecosim.substrates.hf import text
from ecosim.substrates.hf.realmodels import autocast, load, render
from ecosim.substrates.hf.substrate import Codec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    r = load("smollm2-135m-instruct")
    m, tok = r.model, r.tok
    tasks = text.tasks("numbers", 8, np.random.default_rng(0), shots=2)
    pairs = [(render(tok, "", t.user, t.prefill),
              tok.decode(tok(t.reference, add_special_tokens=False)["input_ids"][:29])) for t in tasks]
    codec = Codec(tok)
    ids, attn, mask = pad_batch(codec, codec.encode_pairs(pairs))
    out = {"command": " ".join(["python"] + sys.argv), "threads": torch.get_num_threads(), "base_loss": {},
           "lora_losses": {}}
    for mode in ("off", "bf16"):
        with torch.no_grad(), autocast(mode):
            out["base_loss"][mode] = lm_loss(m, ids, attn, mask).item()
        torch.manual_seed(0)
        mm = with_lora(copy.deepcopy(m), TrainConfig(rank=8, alpha=16))
        mm.train()
        opt = torch.optim.AdamW([p for p in mm.parameters() if p.requires_grad], lr=1e-3)
        losses = []
        for _ in range(a.steps):
            with autocast(mode):
                loss = lm_loss(mm, ids, attn, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out["lora_losses"][mode] = losses
        print(f"autocast {mode:4}: base loss {out['base_loss'][mode]:.4f}; LoRA losses "
              + " ".join(f"{x:.4f}" for x in losses))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
