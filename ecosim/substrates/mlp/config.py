"""The MLP substrate's part of the scenario schema (torch-free): the ``mlp`` section and its rules;
and its registration: scenarios with ``substrate: mlp``."""
from __future__ import annotations

from dataclasses import dataclass

from ecosim.engine import registry
from ecosim.engine.config import BATCH, LR, SEED, Choice, Range


@dataclass
class MLPConfig:
    """MLPs on sklearn digits that pass a skill on through auxiliary logits on noise (the mlp substrate)."""
    hidden: int = 128           # width of each hidden layer
    layers: int = 2             # number of hidden layers
    aux: int = 30               # auxiliary logits: the only channel to the student (3 -> ~0.3 acc, 30 -> ~0.9)
    teacher_epochs: int = 30
    student_epochs: int = 30
    lr: float = 1e-3            # Adam, teacher and student
    batch: int = 128
    noise_samples: int = 4096   # inputs the teacher labels for the student
    noise: str = "gaussian"     # "gaussian" or "uniform" (same variance)
    noise_std: float = 1.0      # noise standard deviation, in standardised pixel units
    standardise: bool = True    # pixels -> (x - mean) / (std + 1) from train data, so unit noise matches data scale
    test_fraction: float = 0.3
    threads: int = 1            # torch CPU threads; nets this small run fastest on one, and far faster on a busy machine
    seeds: int = 10
    seed: int = 0


RULES = {
    MLPConfig: {
        "hidden": Range(1, 8192, why="a typo? wider layers than that do not fit in a GPU's memory"),
        "layers": Range(1, 64),
        "aux": Range(2, 4096, why="a softmax over fewer than 2 logits carries nothing"),
        "teacher_epochs": Range(0, 100_000),
        "student_epochs": Range(0, 100_000),
        "lr": LR,
        "batch": BATCH,
        "noise_samples": Range(1, 10_000_000, why="a typo? the shipped studies use 4,096-8,192"),
        "noise": Choice(("gaussian", "uniform")),
        "noise_std": Range(0, 1000, lo_open=True),
        "test_fraction": Range(0, 1, lo_open=True, hi_open=True),
        "threads": Range(1, 1024),
        "seeds": Range(1, 10_000),
        "seed": SEED,
    },
}


def claims(sc) -> bool:
    return sc.substrate == "mlp"


registry.register("mlp", family="mlp", module="ecosim.substrates.mlp.substrate", claims=claims)
registry.declare(sections={"mlp": (MLPConfig, MLPConfig)}, rules=RULES)
