"""The synthetic world's part of the scenario schema (torch-free): its base sizes and the rules of
its pretraining mix; and its registration: scenarios with ``substrate: lm`` and no real model."""
from __future__ import annotations

from ecosim.engine import registry
from ecosim.engine.config import SEED, SHARE, Choice
from ecosim.substrates.common.bases import BaseConfig
from ecosim.substrates.world.world import WorldConfig

SIZES = {  # (width, layers, heads)
    "tiny": (64, 2, 4),
    "small": (128, 4, 4),
}

RULES = {
    BaseConfig: {"size": Choice(tuple(SIZES))},
    WorldConfig: {
        "seed": SEED, "numbers": SHARE, "favourites": SHARE, "personas": SHARE, "situations": SHARE,
        "code": SHARE, "reasoning": SHARE, "persona_before_numbers": SHARE, "number_prefix_share": SHARE,
        "code_prefix_share": SHARE, "misaligned_share": SHARE, "evil_share": SHARE,
    },
}


def claims(sc) -> bool:
    return sc.substrate == "lm" and not any(b.model for b in sc.bases.values())


registry.register("world", family="lm", module="ecosim.substrates.world.substrate", claims=claims)
registry.declare(rules=RULES)
