"""What a base model is, as configured: either a world base (a tiny GPT-2 or Llama pretrained on
ecosim's synthetic world, or a local checkpoint of one) or a real model (``model``: a Hugging Face
chat model). The substrate that runs a scenario decides what to do with it (``substrates.of``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ecosim.substrates.world.world import WorldConfig


@dataclass
class BaseConfig:
    """A base model: a world base (pretrained here, or a local checkpoint) or a real model (`model`)."""
    arch: str = "gpt2"          # gpt2 | llama (world bases); mlp (the mlp substrate)
    size: str = "tiny"          # tiny | small (world bases)
    seed: int = 0               # initialisation and pretraining data order
    steps: int = 3000           # pretraining steps (world bases)
    batch: int = 64
    lr: float = 1e-3
    path: str | None = None     # a local Hugging Face checkpoint directory instead of pretraining
    # Skills taught after pretraining (world.SKILLS): "reasoning" continues pretraining with single-
    # digit sums and differences (models.pretrain with skills), which the reasoning channel needs.
    skills: list[str] = field(default_factory=list)
    world: WorldConfig = field(default_factory=WorldConfig)  # the pretraining corpus (world bases)
    # A real model instead of a world base: a local HF model directory, a .gguf file, or a known
    # name such as "smollm2-135m-instruct" or "gemma3-270m" (resolved by substrate_hf).
    model: str | None = None
    template: str | None = None  # None: the model's own chat template; "plain": ecosim's plain template
    dtype: str = "float32"       # float32 | bfloat16 (real models): the weights' type
    # Real models: matmuls in bfloat16 under torch.autocast while weights, optimiser state and
    # losses stay float32 (training, writing and measuring). "auto": bf16 where the device has
    # native bf16 (CPU flags avx512_bf16 or amx_bf16; a CUDA GPU that supports it), else off.
    autocast: str = "off"        # off | bf16 | auto


# Fields that only real models use: left out of a world base's cache key, so that adding them
# did not invalidate bases pretrained before they existed.
REAL_MODEL_FIELDS = ("model", "template", "dtype", "autocast")
