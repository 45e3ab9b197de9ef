"""The MLP substrate of an ecosystem run (same functions as ``substrate_lm``): MLPs on sklearn
digits pass a skill to each other through auxiliary logits on noise, the paper's MNIST setting
in miniature (``ecosim.mlp``). Small enough for dozens of lineages over ten generations.

- generation 0, trait 'skill': the base (an initialisation) trained on the digits; neutral: the
  same training on shuffled labels (same pipeline, no skill);
- the channel: softmax of the aux logits on noise inputs; the class logits are never shipped;
- a student: its start distilled on the aux logits only; the trait: test accuracy on digits."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ecosim.engine import seeds
from ecosim.substrates.common import adapters
from ecosim.substrates.common.assemble import assemble as common_assemble
from ecosim.substrates.mlp.mlp import N_CLASSES, accuracy, distill, load_digits_split, make_mlp, train_teacher, write_aux_logits
from ecosim.substrates.common.training import set_threads  # noqa: F401  (protocol)

NO_SYSTEM = ""
DATASET_SUFFIX = ".safetensors"
CHANNELS = ("aux_logits",)
SAMPLES_OF: dict[str, str] = {}
REPLICA_SEEDS = True  # replicas of a lineage start from their own initialisations
METRICS = {"heldout_loss": "capability", "drift_kl": "drift"}  # besides the skill's accuracy


def check(sc) -> list[str]:
    p = []
    for name, b in sc.bases.items():
        if b.arch != "mlp":
            p.append(f"bases.{name}.arch: {b.arch!r} is not one of ['mlp'] (substrate {sc.substrate})")
        if b.model is not None:
            p.append(f"bases.{name}.model: the mlp substrate has no real models")
    for name, t in sc.traits.items():
        if t.kind != "skill":
            p.append(f"traits.{name}.kind: the mlp substrate has one trait kind, 'skill' (got {t.kind!r})")
    for name, l in sc.lineages.items():
        if l.origin == "prompt":
            p.append(f"lineages.{name}.origin: the mlp substrate supports finetune | base | none (got {l.origin!r})")
    if sc.data.real_share > 0:
        p.append("data.real_share: the mlp substrate has no real data to mix in; use 0")
    return p


def prepare(sc, bases_used: set[str], log=print) -> float:
    """Nothing to prepare: an MLP base is an initialisation, made in a few milliseconds."""
    return 0.0


def world_of(sc):
    """The digits split every model of the run is trained and tested on."""
    return load_digits_split(sc.mlp, sc.seed)


def load_base(bc, sc, name: str | None = None):
    return make_mlp(sc.mlp, bc.seed)


def make_origin(base, world, sc, origin: str, trait, neutral: bool, seed: int, channel: str | None = None):
    if origin == "base":
        return base, NO_SYSTEM, None
    Xtr, ytr, _, _ = world
    if neutral:  # the same training on shuffled labels: a teacher with no skill
        ytr = ytr[torch.from_numpy(seeds.rng(seed, 3).permutation(len(ytr)))]
    return train_teacher(copy.deepcopy(base), Xtr, ytr, sc.mlp, seed=seed), NO_SYSTEM, None


TARGET_TEACHERS = False
HELD_MODELS = 4  # small models: a lineage keeps its last few and the parents it trains and writes from


def lineage_gb(sc, base: str) -> None:
    """Not measured (small MLPs): no memory check."""
    return None


def write(model, system, world, sc, channel, filters, seed: int, base=None):
    """Aux-logit soft labels on noise; nothing to filter, so every filter keeps everything."""
    x, soft = write_aux_logits(model, sc.mlp, seed)
    summary = {"total": len(x), "kept": len(x), "kept_fraction": 1.0, "rejected": {}}
    return [((x, soft), summary) for _ in filters]


def assemble(parts, world, sc, channel, seed: int, size: int | None = None):
    """Parents' (x, soft) sets in proportion to their weights (``common.assemble``):
    ``mlp.noise_samples`` in all, or everything under ``accumulate``."""
    def take(part, k, seed, i):
        x, s = part
        idx = torch.from_numpy(seeds.rng(seed, i).permutation(len(x))[:k])
        return x[idx], s[idx]

    def join(pieces):
        return torch.cat([x for x, _ in pieces]), torch.cat([s for _, s in pieces])
    return common_assemble(parts, sc, seed, size, cap=sc.mlp.noise_samples, length=lambda d: len(d[0]),
                           take=take, join=join)


def train(start, world, data, sc, spec, seed: int):
    return distill(copy.deepcopy(start), data, sc.mlp, seed=seed), None


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return c - h, c + h


@torch.no_grad()
def measure(model, system, base, world, sc, seed: int) -> dict:
    """skill (test accuracy, Wilson 95% CI over test digits), held-out loss on the test digits, and
    drift: parameter distance from the base relative to the base's norm."""
    _, _, Xte, yte = world
    acc = accuracy(model, Xte, yte)
    lo, hi = _wilson(int(round(acc * len(yte))), len(yte))
    loss = float(F.cross_entropy(model(Xte)[:, :N_CLASSES], yte))
    diff = sum(float((a - b).pow(2).sum()) for a, b in zip(model.parameters(), base.parameters()))
    norm = sum(float(b.pow(2).sum()) for b in base.parameters())
    name = next(iter(sc.traits), "skill")
    return {name: (acc, lo, hi), "heldout_loss": (loss, None, None),
            "drift_kl": (math.sqrt(diff / norm), None, None)}


def save(path: Path, model, adapter, meta: dict, world) -> None:
    """The whole state dict (``common.adapters``)."""
    adapters.save(path, meta, model.state_dict(), name=adapters.STATE)


def load(path: Path, start, meta: dict, world):
    model = copy.deepcopy(start)
    model.load_state_dict(adapters.load_tensors(path / adapters.STATE))
    return model.eval()


def dump(data, path: Path) -> None:
    adapters.save_tensors(Path(path), {"x": data[0], "soft": data[1]})


def undump(path: Path):
    d = adapters.load_tensors(path)
    return d["x"], d["soft"]


def base_digest(bc, sc, name: str | None = None) -> tuple[str, str]:
    """(sha256, what) of an MLP base: it has no file (it is made from its seed), so the digest is
    of the initial weights ``load_base`` makes, which changes if the initialisation code does. A
    run records it when it starts; ``--resume`` refuses a run whose base changed since."""
    import hashlib
    h = hashlib.sha256()
    for k, v in load_base(bc, sc, name).state_dict().items():
        h.update(k.encode() + b"\0" + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest(), f"no file: the initialisation from seed {bc.seed}"
