"""The substrates: what the engine runs models on. Importing this package registers each one with
the engine's registry (``ecosim.engine.registry``) through its torch-free config module: its
name, which scenarios it claims, the module that implements ``protocol.Substrate``, and the
config sections and rules it adds to the scenario schema. The engine imports it by name, the
first time it needs a substrate; the torch side of a substrate is imported only to run it.

- ``world``: tiny GPT-2/Llama models pretrained on ecosim's synthetic world
- ``hf``: real Hugging Face chat models (a scenario whose bases set ``model``)
- ``mlp``: MLPs passing auxiliary logits on noise
- ``common``: what they share (configs, the numbers filter, training, assembling training sets)
"""
from ecosim.engine import registry
from ecosim.substrates.common import config as common

registry.declare(slots=common.SLOTS, sections=common.SECTIONS, rules=common.RULES, check=common.check)

from ecosim.substrates.hf import config as _hf  # noqa: E402,F401  (registers; claims before world)
from ecosim.substrates.world import config as _world  # noqa: E402,F401
from ecosim.substrates.mlp import config as _mlp  # noqa: E402,F401
