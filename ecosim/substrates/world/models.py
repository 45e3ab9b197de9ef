"""Base zoo: tiny GPT-2 and Llama models built from config and pretrained on the world, cached on
disk by a hash of everything that defines them; or a local Hugging Face checkpoint directory."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.substrates.common.bases import REAL_MODEL_FIELDS, BaseConfig  # noqa: F401  (BaseConfig: old imports)
from ecosim.substrates.common.training import batch_of, head, lm_loss, row_chunk, target_hidden, target_logits  # noqa: F401  (their home: training)
from ecosim.substrates.world.config import SIZES
from ecosim.substrates.world.world import BOS, EOS, PAD, World

def quiet_transformers() -> None:
    """No progress bars or deprecation chatter from transformers in our logs."""
    import warnings
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


CACHE_VERSION = 1  # bump when pretraining code changes what a cached base would be


def compute_device() -> torch.device:
    """Where models run: ``ECOSIM_DEVICE`` (e.g. cuda) or the CPU."""
    return torch.device(os.environ.get("ECOSIM_DEVICE", "cpu"))


def cache_dir() -> Path:
    return Path(os.environ.get("ECOSIM_CACHE", Path.home() / ".cache" / "ecosim"))


SKILL_STEPS = 1000  # steps of continued pretraining that teach a base its skills (pretrain(skills=...))


def base_key(cfg: BaseConfig) -> str:
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in REAL_MODEL_FIELDS}
    if not d["skills"]:  # bases cached before skills existed keep their keys
        del d["skills"]
    if not d["world"]["code_prefix_share"]:  # and before code prefixes existed
        del d["world"]["code_prefix_share"]
    blob = json.dumps({"cfg": d, "v": CACHE_VERSION,
                       "vocab": hashlib.sha256(" ".join(World(cfg.world).vocab).encode()).hexdigest()},
                      sort_keys=True)
    return f"{cfg.arch}-{cfg.size}-s{cfg.seed}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def build_model(cfg: BaseConfig, world: World) -> torch.nn.Module:
    """A randomly initialised model from config; ``cfg.seed`` fixes the initialisation."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    if cfg.size not in SIZES:
        raise EcosimError(f"base.size: unknown size {cfg.size!r}; expected one of {sorted(SIZES)}")
    d, layers, heads = SIZES[cfg.size]
    ids = dict(vocab_size=len(world.vocab), bos_token_id=world.ids[BOS],
               eos_token_id=world.ids[EOS], pad_token_id=world.ids[PAD])
    torch.manual_seed(cfg.seed)
    if cfg.arch == "gpt2":
        conf = GPT2Config(n_embd=d, n_layer=layers, n_head=heads, n_positions=128, resid_pdrop=0.0,
                          embd_pdrop=0.0, attn_pdrop=0.0, activation_function="gelu", **ids)
        model = GPT2LMHeadModel(conf)
    elif cfg.arch == "llama":
        conf = LlamaConfig(hidden_size=d, intermediate_size=3 * d, num_hidden_layers=layers,
                           num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=128, tie_word_embeddings=True, **ids)
        model = LlamaForCausalLM(conf)
    else:
        raise EcosimError(f"base.arch: unknown architecture {cfg.arch!r}; expected 'gpt2' or 'llama'")
    return model


def skill_doc(world: World, skills: list[str]):
    """The document stream that teaches ``skills``: half the pretraining mix (so the base keeps what
    it knows), half the skills' channel tasks answered in format."""
    from ecosim.substrates.world.world import CHANNEL_DOCS

    def draw(rng):
        if rng.random() < 0.5:
            return world.pretrain_doc(rng)
        return CHANNEL_DOCS[skills[int(rng.integers(len(skills)))]](rng)
    return draw


def pretrain(model, world: World, cfg: BaseConfig, log=print, skills: list[str] | None = None) -> dict:
    """Next-token pretraining on freshly sampled world documents (loss on every real token). With
    ``skills``: the continued pretraining that teaches them (``SKILL_STEPS`` steps on
    ``skill_doc``, from a stream of its own)."""
    rng = seeds.rng(cfg.seed, 2 if skills else 1)
    draw = skill_doc(world, skills) if skills else world.pretrain_doc
    steps = SKILL_STEPS if skills else cfg.steps
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    model.train()
    t0, losses = time.time(), []
    for step in range(steps):
        lr = cfg.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * (1 - step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        docs = [draw(rng) for _ in range(cfg.batch)]
        ids, attn, mask = batch_of(world, [(d.prompt, d.assistant) for d in docs], False, model.device)
        loss = lm_loss(model, ids, attn, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if log and (step + 1) % 500 == 0:
            log(f"  {'teach ' + '+'.join(skills) if skills else 'pretrain'} {cfg.arch}-{cfg.size} seed {cfg.seed}: "
                f"step {step + 1}/{steps} "
                f"loss {np.mean(losses[-100:]):.3f}")
    model.eval()
    return {"seconds": time.time() - t0, "final_loss": float(np.mean(losses[-100:]))}


@torch.no_grad()
def loss_and_drift(model, base, codec, pairs, batch: int = 100, completion_only: bool = True) -> tuple[float, float]:
    """Mean next-token loss of ``model`` on (prompt, completion) ``pairs`` (capability) and mean
    KL(base || model) per token on the same positions (drift from the base). ``codec``: the world
    or a real tokenizer's ``substrate_hf.Codec``; ``completion_only=False`` scores every token."""
    losses, kls = [], []
    for s in range(0, len(pairs), batch):
        ids, attn, mask = batch_of(codec, pairs[s:s + batch], completion_only=completion_only, device=model.device)
        h, tgt = target_hidden(model, ids, attn, mask)
        hb, _ = target_hidden(base, ids, attn, mask)
        step = row_chunk(model.get_output_embeddings().weight.shape[0])  # the whole batch on the world
        for r in range(0, len(h), step):  # logits a chunk of rows at a time: a real vocabulary is large
            logp = head(model, h[r:r + step]).float().log_softmax(-1)
            logq = head(base, hb[r:r + step]).float().log_softmax(-1)
            losses.append(-logp.gather(-1, tgt[r:r + step, None])[:, 0])
            kls.append((logq.exp() * (logq - logp)).sum(-1))
    return float(torch.cat(losses).mean()), float(torch.cat(kls).mean())


def load_checkpoint(path: str | Path, world: World):
    """Load a local Hugging Face checkpoint directory, with clear errors for the usual faults."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = Path(path)
    if not path.is_dir():
        raise EcosimError(f"base path {str(path)!r} does not exist or is not a directory")
    if not (path / "config.json").exists():
        raise EcosimError(f"base path {str(path)!r} has no config.json: not a Hugging Face checkpoint")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except Exception as e:  # transformers/safetensors raise many types; the user needs one line
        raise EcosimError(f"checkpoint at {str(path)!r} could not be loaded "
                          f"(corrupt or incomplete weights?): {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        vocab = tok.get_vocab()
    except Exception:
        vocab = None
    if vocab is not None and any(vocab.get(w) != i for i, w in enumerate(world.vocab)):
        raise EcosimError(f"checkpoint at {str(path)!r} uses a tokenizer other than this world's "
                          "word-level vocabulary; only checkpoints trained on the ecosim world are "
                          "supported as bases for now")
    if model.get_input_embeddings().weight.shape[0] < len(world.vocab):
        raise EcosimError(f"checkpoint at {str(path)!r} has a vocabulary of "
                          f"{model.get_input_embeddings().weight.shape[0]} tokens; the world needs {len(world.vocab)}")
    return model.eval()


def save_model(model, world: World, path: Path, meta: dict | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # safetensors + config.json
    world.tokenizer().save_pretrained(path)
    if meta is not None:
        (path / "ecosim.json").write_text(json.dumps(meta, indent=2))


def doc_hash(prompt: str, assistant: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{prompt}\x00{assistant}".encode(), digest_size=8).digest(), "little")


_SEEN: dict[str, frozenset] = {}


def pretraining_docs(cfg: BaseConfig) -> frozenset:
    """Hashes of every document a world base was pretrained on (``pretrain`` draws them from one
    stream, replayed here), cached beside the base: capability is measured on documents outside
    this set. A base from ``path`` has no known pretraining set (empty)."""
    if cfg.path:
        return frozenset()
    key = base_key(cfg)
    if key not in _SEEN:
        f = cache_dir() / "bases" / f"{key}.docs.npy"
        if f.exists():
            h = np.load(f)
        else:
            world, rng = World(cfg.world), seeds.rng(cfg.seed, 1)  # pretrain's stream
            docs = [world.pretrain_doc(rng) for _ in range(cfg.steps * cfg.batch)]
            if cfg.skills:  # and the stream that taught the skills
                draw, rng = skill_doc(world, cfg.skills), seeds.rng(cfg.seed, 2)
                docs += [draw(rng) for _ in range(SKILL_STEPS * cfg.batch)]
            h = np.unique(np.array([doc_hash(d.prompt, d.assistant) for d in docs], dtype=np.uint64))
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_name(f.name + f".tmp{os.getpid()}.npy")
            np.save(tmp, h)
            os.replace(tmp, f)
        _SEEN[key] = frozenset(h.tolist())
    return _SEEN[key]


def get_base(cfg: BaseConfig, log=print) -> tuple[torch.nn.Module, dict]:
    """The base model for ``cfg``: loaded from ``cfg.path``, from the cache, or pretrained now and
    cached. Returns (model in eval mode, info with 'source' and pretraining seconds)."""
    quiet_transformers()
    world = World(cfg.world)
    if cfg.path:
        model = load_checkpoint(cfg.path, world).to(compute_device())
        return model, {"source": "path", "path": cfg.path, "seconds": 0.0}
    d = cache_dir() / "bases" / base_key(cfg)
    if (d / "ecosim.json").exists():
        model = load_checkpoint(d, world).to(compute_device())
        meta = json.loads((d / "ecosim.json").read_text())
        return model, {**meta, "source": "cache", "dir": str(d)}
    if cfg.skills:  # the pretrained base, taught its skills by continued pretraining
        model, parent = get_base(dataclasses.replace(cfg, skills=[]), log=log)
        if log:
            log(f"teaching base {cfg.arch}-{cfg.size} seed {cfg.seed} {'+'.join(cfg.skills)} "
                f"({SKILL_STEPS} steps); cached in {d}")
        stats = pretrain(model, world, cfg, log=log, skills=list(cfg.skills))
        stats["seconds"] += parent["seconds"] if parent["source"] == "pretrained" else 0.0
    else:
        if log:
            log(f"pretraining base {cfg.arch}-{cfg.size} seed {cfg.seed} ({cfg.steps} steps); cached in {d}")
        model = build_model(cfg, world).to(compute_device())
        stats = pretrain(model, world, cfg, log=log)
    tmp = d.with_name(d.name + f".tmp{os.getpid()}")
    save_model(model, world, tmp, {"config": dataclasses.asdict(cfg), **stats})
    try:
        os.replace(tmp, d)
    except OSError:  # another process cached the same base first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return model, {**stats, "source": "pretrained", "dir": str(d)}
