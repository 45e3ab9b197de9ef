"""Students and teachers are trained here: supervised fine-tuning with the loss on completions
only (or on soft labels from the logit channel), LoRA (peft) or full, AdamW. One flat loop."""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.substrates.common.config import TrainConfig  # noqa: F401  (its home; imported from here too)
from ecosim.substrates.world.world import BOS, EOS, PAD, World

LORA_TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"],
                "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


def encode_pairs(world, pairs) -> list[tuple[list[int], int]]:
    """(prompt, completion) texts -> (ids with BOS ... EOS, number of prompt ids incl. BOS).
    ``world`` is the synthetic world or any codec with its own ``encode_pairs`` and ``pad_id``
    (a real model's tokenizer: ``substrate_hf.Codec``)."""
    if not isinstance(world, World):
        return world.encode_pairs(pairs)
    bos, eos = world.ids[BOS], world.ids[EOS]
    out = []
    for prompt, completion in pairs:
        p = [bos] + world.encode(prompt)
        out.append((p + world.encode(completion) + [eos], len(p)))
    return out


def pad_batch(world, enc, completion_only: bool = True, device=None):
    """Right-padded ids, attention mask and loss mask (1 where the token is a training target)."""
    pad = world.ids[PAD] if isinstance(world, World) else world.pad_id
    L = max(len(ids) for ids, _ in enc)
    ids = torch.full((len(enc), L), pad, dtype=torch.long)
    attn = torch.zeros((len(enc), L), dtype=torch.long)
    mask = torch.zeros((len(enc), L), dtype=torch.long)
    for i, (x, n_prompt) in enumerate(enc):
        ids[i, :len(x)] = torch.tensor(x)
        attn[i, :len(x)] = 1
        mask[i, (n_prompt if completion_only else 1):len(x)] = 1
    return ids.to(device), attn.to(device), mask.to(device)


def _unwrapped(model):
    """The transformers model inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _body(model):
    """The transformer without its output layer (GPT-2's ``transformer``, Llama-style ``model``)."""
    m = _unwrapped(model)
    return m.transformer if hasattr(m, "transformer") else m.model


def target_hidden(model, ids, attn, mask):
    """(last hidden states, next tokens) only at the positions whose next token is a target (mask 1).
    No key-value cache: a training pass has no later step to read one (and under
    ``compile_layers`` each layer's cache entry would recompile its layer)."""
    h = _body(model)(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
    sel = mask[:, 1:].bool()
    return h[:, :-1][sel], ids[:, 1:][sel]


def head(model, h):
    """The output layer on hidden states ``h`` [rows, hidden]: logits [rows, vocabulary]."""
    m = _unwrapped(model)
    logits = m.get_output_embeddings()(h)
    cap = getattr(m.config, "final_logit_softcapping", None)  # Gemma-style models squash logits
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def target_logits(model, ids, attn, mask):
    """Logits only at the positions whose next token is a training target (mask 1): the output
    layer over the whole vocabulary dominates a tiny model's cost, so skip the rest."""
    h, tgt = target_hidden(model, ids, attn, mask)
    return head(model, h), tgt


def row_chunk(vocab: int, floats: int = 1 << 24) -> int:
    """Rows of logits per chunk so that one [rows, vocab] float32 tensor stays near 64 MB: a
    real model's 50k-260k-token vocabulary times a few thousand positions is gigabytes."""
    return max(1, floats // vocab)


@torch.no_grad()
def completion_logprobs(model, world, pairs, batch: int = 256) -> list:
    """Teacher-forced log P of each completion token, then of its EOS, for every (prompt,
    completion) pair: one 1-D CPU tensor per pair (``world``: the synthetic world or a real
    model's codec, as ``encode_pairs`` takes)."""
    enc, out = encode_pairs(world, pairs), []
    for s in range(0, len(enc), batch):
        ids, attn, mask = pad_batch(world, enc[s:s + batch], device=model.device)
        logits, tgt = target_logits(model, ids, attn, mask)
        lp = torch.log_softmax(logits.float(), -1).gather(-1, tgt[:, None]).squeeze(-1)
        out += lp.cpu().split(mask[:, 1:].sum(-1).tolist())
    return out


def lm_loss(model, ids, attn, mask):
    """Mean next-token cross-entropy over positions whose *target* token has mask 1."""
    logits, tgt = target_logits(model, ids, attn, mask)
    return torch.nn.functional.cross_entropy(logits.float(), tgt)


def batch_of(world, pairs, completion_only: bool = True, device=None):
    return pad_batch(world, encode_pairs(world, pairs), completion_only, device)


def arch_of(model) -> str:
    return "gpt2" if model.config.model_type == "gpt2" else "llama"


def with_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model
    arch = arch_of(model)
    targets = list(cfg.targets) if cfg.targets else LORA_TARGETS[arch]
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise EcosimError(f"student.targets: {missing} are not modules of a {arch} model; "
                          f"expected some of {LORA_TARGETS[arch]}")
    lc = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=targets, lora_dropout=0.0,
                    fan_in_fan_out=arch == "gpt2", bias="none")
    return get_peft_model(model, lc)


def finetune(model, world, pairs, cfg: TrainConfig, seed: int, soft=None, log=None,
             keep_adapter: bool = False, probe=None, max_tokens: int | None = None,
             checkpointing: bool = False, compiled: bool = False):
    """Train a copy of ``model`` on (prompt, completion) pairs and return it merged, in eval mode.

    With ``soft`` (one (index, prob) tensor pair per example, from the logit channel) the loss is
    the cross-entropy against those soft labels on completion positions instead of the sampled
    tokens. The input model is left untouched. ``keep_adapter``: return (merged model, the LoRA
    adapter's state dict) so that a checkpoint can store the adapter instead of the model.
    ``probe(updates, model)``, if given, is called after each update with the model as it trains
    (LoRA not merged; in eval mode, put back in train mode after): a long student's readouts along
    the way (``bench/logit_sweep.py``); training stops there when it returns True (a teacher
    trained to a target strength). ``max_tokens``: a batch whose padded size
    exceeds it runs as micro-batches of at most that many padded tokens (at least one example
    each), whose gradients add up to the batch's (``passes``; the same update up to float
    rounding, with a fraction of the activations' memory); None: one pass. ``checkpointing``:
    each layer's activations are recomputed in the backward pass, not kept (``compute.checkpointing``).
    ``compiled``: each decoder layer runs through torch.compile while it trains, and plainly after
    (``compute.compile_layers``)."""
    if not pairs:
        raise EcosimError("no training examples left after filtering: nothing to train on")
    rng = seeds.rng(seed)
    torch.manual_seed(seed)  # LoRA's own init draws from torch's RNG; seed it from our seed
    model = copy.deepcopy(model)
    if cfg.mode == "lora":
        model = with_lora(model, cfg)
    elif cfg.mode != "full":
        raise EcosimError(f"student.mode: {cfg.mode!r} is not 'lora' or 'full'")
    if checkpointing:
        set_checkpointing(model, True)
    if compiled:
        compile_layers(model, True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = None  # constant with no warm-up: no scheduler at all (the optimiser's own lr, bit for bit)
    if getattr(cfg, "schedule", "constant") != "constant" or getattr(cfg, "warmup", 0):
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps, cfg.schedule, cfg.warmup))
    enc = encode_pairs(world, pairs)
    model.train()
    order = np.array([], dtype=int)
    for step in range(cfg.steps):
        if len(order) < cfg.batch:  # walk through shuffled epochs
            order = np.concatenate([order, rng.permutation(len(enc))])
        idx, order = order[:cfg.batch], order[cfg.batch:]
        opt.zero_grad(set_to_none=True)
        parts = passes([len(enc[i][0]) for i in idx], max_tokens)
        n_all = sum(len(enc[i][0]) - enc[i][1] for i in idx)  # target positions of the whole batch
        loss = 0.0
        for part in parts:  # one pass, or micro-batches whose gradients add up to the batch's
            ids, attn, mask = pad_batch(world, [enc[idx[j]] for j in part], device=model.device)
            if soft is None:
                part_loss = lm_loss(model, ids, attn, mask)
            else:
                part_loss = soft_loss(model, ids, attn, mask, [soft[idx[j]] for j in part])
            if len(parts) > 1:  # each part's mean, weighted by its share of the targets
                part_loss = part_loss * (int(mask[:, 1:].sum()) / n_all)
            part_loss.backward()
            loss = loss + part_loss.detach()
        opt.step()
        if sched is not None:
            sched.step()
        if log and (step + 1) % 250 == 0:
            log(f"    step {step + 1}/{cfg.steps} loss {loss.item():.3f}")
        if probe is not None:
            model.eval()
            if compiled:  # a probe writes and measures (key-value caches): plainly, as after training
                compile_layers(model, False)
            stop = probe(step + 1, model)
            if compiled:
                compile_layers(model, True)  # the compiled code is reused, not compiled again
            model.train()
            if stop:
                break
    model.eval()
    if checkpointing:
        set_checkpointing(model, False)
    if compiled:  # before LoRA merges: merging swaps the layers' modules under the compiled code
        compile_layers(model, False)
    if cfg.mode != "lora":
        return (model, None) if keep_adapter else model
    adapter = None
    if keep_adapter:
        from peft import get_peft_model_state_dict
        adapter = {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
    out = merged(model)
    return (out, adapter) if keep_adapter else out


def set_checkpointing(model, on: bool) -> None:
    """Activation checkpointing on or off (``compute.checkpointing``); non-reentrant, so that a
    LoRA model's frozen inputs still pass gradients on."""
    m = _unwrapped(model)
    if hasattr(m, "activation_checkpointing_enable"):  # its name from transformers 5.2x on
        m.activation_checkpointing_enable({"use_reentrant": False}) if on else m.activation_checkpointing_disable()
    else:
        m.gradient_checkpointing_enable({"use_reentrant": False}) if on else m.gradient_checkpointing_disable()


def decoder_layers(model) -> list:
    """The repeated blocks of a transformers model (Llama-style ``model.layers``, GPT-2's ``transformer.h``)."""
    body = _body(model)
    return list(body.h if hasattr(body, "h") else body.layers)


def compiles(setting: str, mode: str) -> bool:
    """Whether a training of ``mode`` (lora, full) compiles its layers under ``compute.compile_layers``."""
    return setting == "on" or (setting == "lora" and mode == "lora")


def compile_layers(model, on: bool) -> None:
    """Each decoder layer through torch.compile (compiled lazily, at its first call) or back to
    its plain forward (``compute.compile_layers``). Identical layers share one compiled graph;
    a batch of a new length recompiles once, then shapes are dynamic."""
    for layer in decoder_layers(model):
        if on:
            layer.compile()
        else:
            layer._compiled_call_impl = None  # what nn.Module.compile set; None: the plain forward


def passes(lengths: list[int], max_tokens: int | None) -> list[list[int]]:
    """The batch's examples (by position) in consecutive groups whose padded size (rows x
    longest row) is at most ``max_tokens``, one example at least; all in one group if None."""
    if max_tokens is None:
        return [list(range(len(lengths)))]
    out, cur, longest = [], [], 0
    for j, n in enumerate(lengths):
        if cur and (len(cur) + 1) * max(longest, n) > max_tokens:
            out.append(cur)
            cur, longest = [], 0
        cur.append(j)
        longest = max(longest, n)
    return out + [cur]


def lr_factor(step: int, steps: int, schedule: str, warmup: int) -> float:
    """The learning rate at optimiser step ``step`` (0-based) as a share of ``TrainConfig.lr``:
    linear warm-up over ``warmup`` steps, then constant, or a linear or cosine decay that reaches
    0 after the last of ``steps`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    t = (step - warmup) / max(1, steps - warmup)  # 0 at the end of warm-up, 1 after the last step
    return max(0.0, 1.0 - t) if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def apply_adapter(model, adapter: dict, cfg: TrainConfig | dict):
    """A copy of ``model`` with a saved LoRA ``adapter`` (from ``finetune(keep_adapter=True)``)
    merged in: the same weights ``finetune`` returned. ``cfg`` may be the config as a checkpoint
    saved it (a dict; a teacher's carries more fields than a TrainConfig, e.g. task_share)."""
    from peft import set_peft_model_state_dict
    if isinstance(cfg, dict):
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        cfg = TrainConfig(**{k: v for k, v in cfg.items() if k in known})
    peft_model = with_lora(copy.deepcopy(model), cfg)
    set_peft_model_state_dict(peft_model, adapter)
    peft_model.eval()
    return merged(peft_model)


def merged(peft_model):
    """``peft_model``'s LoRA merged into its weights, every weight requiring grad again as a loaded
    model's does (peft froze them). Frozen, a full fine-tune of the merged model found nothing to
    train ("optimizer got an empty parameter list"), and under autocast its float32 weights were
    cast to bf16 at every forward, as autocast caches the cast only of a leaf that requires grad:
    SmolLM2 generating one prompt at a time took 26.1 s frozen against 16.0 s (6 prompts x 64
    tokens), and 22.2 s against 20.3-21.4 s for 64 prompts in one batch (bf16, 2-core EPYC)."""
    return peft_model.merge_and_unload().requires_grad_(True)


def soft_loss(model, ids, attn, mask, soft):
    """Cross-entropy of the student's next-token distribution against teacher soft labels.
    ``soft[b] = (idx [T, k], prob [T, k])`` for the T completion targets of example b, in order;
    ``idx`` is None when ``prob`` covers the whole vocabulary."""
    logits, _ = target_logits(model, ids, attn, mask)
    logp = torch.log_softmax(logits.float(), -1)
    prob = torch.cat([s[1].float() for s in soft]).to(logits.device)  # float16 rows: CPU autocast cannot cat them
    if soft[0][0] is not None:
        logp = logp.gather(-1, torch.cat([s[0] for s in soft]).long().to(logits.device))
    return -(prob * logp).sum(-1).mean()


def soft_rows(p, counts: list[int], masked, top_k: int | None, support=None):
    """Soft labels from a writer's next-token probabilities ``p`` [positions, vocabulary] (the
    rows of several examples, ``counts`` each): ``masked`` ids zeroed and the rest renormalised;
    with ``support`` (ids) restricted to those tokens and renormalised over them; kept as top-k
    (index int32, prob float16) per example, or full float16 rows (index None) where ``top_k``
    is None and there is no ``support``. Returns (labels, mass masked per position, mass outside
    ``support`` per position or None); ``p`` is changed in place."""
    masked = torch.as_tensor(masked, dtype=torch.long, device=p.device)
    removed = p[:, masked].sum(-1)
    p[:, masked] = 0.0
    outside = None
    if support is not None:
        support = torch.as_tensor(support, dtype=torch.long, device=p.device)
        p = p[:, support]
        outside = (1.0 - removed - p.sum(-1)).clamp_min(0)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-30)
    if top_k is None and support is None:  # the full distribution: no indices to store
        return [(None, pi.to(torch.float16).cpu()) for pi in p.split(counts)], removed, outside
    prob, idx = p.topk(p.shape[-1] if top_k is None else min(top_k, p.shape[-1]), -1)
    prob = prob / prob.sum(-1, keepdim=True)
    if support is not None:
        idx = support[idx]
    labels = [(ii.to(torch.int32).cpu(), pi.to(torch.float16).cpu()) for pi, ii in zip(prob.split(counts), idx.split(counts))]
    return labels, removed, outside


def set_threads(n: int) -> None:
    """Torch's CPU threads in this process (a lineage's, or its actor's)."""
    torch.set_num_threads(n)
