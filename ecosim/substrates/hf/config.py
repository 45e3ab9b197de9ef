"""Real chat models' part of the scenario schema: the ``text`` section (prompting and sampling) and
its rules; and the registration: scenarios with ``substrate: lm`` whose bases name a real model."""
from __future__ import annotations

from ecosim.engine import registry
from ecosim.engine.config import BATCH, Choice, Range
from ecosim.errors import EcosimError
from ecosim.substrates.hf.text import TextSpec

RULES = {
    TextSpec: {
        "temperature": Range(0, 100),           # 0: greedy decoding (real models)
        "shots": Range(0, 5),
        "max_new": Range(1, 1024),
        "batch": BATCH,
        "logit_support": Choice(("vocab", "list")),  # logits channel: whole vocabulary or list tokens only
        "logit_lists": Choice(("own", "base", "twin")),  # logits channel: the writer's lists, its base's, a twin's
    },
}


def claims(sc) -> bool:
    if sc.substrate != "lm":
        return False
    real = sorted(n for n, b in sc.bases.items() if b.model)
    world = sorted(n for n in sc.bases if n not in real)
    if real and world:
        raise EcosimError("bases: world bases and real models cannot be mixed in one scenario: a student "
                          f"learns text written in its own format; world bases: {world}, real models: {real}")
    return bool(real)


def check(sc) -> list[str]:
    if sc.bases_per_seed and sc.seeds > 1 and any(b.model for b in sc.bases.values()):
        return ["bases_per_seed: a real model has one set of weights; every seed starts from it "
                "(set bases_per_seed: false)"]
    return []


registry.register("hf", family="lm", module="ecosim.substrates.hf.substrate", claims=claims)
registry.declare(sections={"text": (TextSpec, TextSpec)}, rules=RULES, check=check)
