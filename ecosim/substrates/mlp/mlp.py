"""Subliminal learning in an MLP: a digit classifier's skill passes through noise.

The theorem demo of Cloud et al. (2025), "Subliminal learning", on sklearn's
bundled 8x8 digits (no download). One network has 10 class logits plus ``aux``
auxiliary logits that no loss ever touches while it learns digits. A student
that starts from the *same initialisation* is trained only to match the
teacher's auxiliary logits on Gaussian noise; it never sees a digit nor a class
logit, yet its class logits learn to read digits. A student from a different
initialisation gets the same data and stays at chance. Why: for nets sharing
an init, one small step of imitation on *any* outputs moves the student's
shared weights along the teacher's own update (the paper's theorem).

The pieces are plain functions so the ecosystem engine can run lineages:
make_mlp -> train_teacher -> write_aux_logits (the channel) -> distill -> accuracy.
Every function takes its own seed; none relies on global RNG state.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ecosim.engine import seeds
from ecosim.errors import EcosimError
from ecosim.analysis.stats import mean_ci
from ecosim.substrates.mlp.config import MLPConfig

N_CLASSES = 10
DIFFERENT_INIT = 10_000  # a control student's init seed is seed + this


def check(cfg: MLPConfig) -> list[str]:
    """Semantic problems with a config, one line each (empty when fine)."""
    problems = [f"{k}: must be >= 1, got {getattr(cfg, k)}" for k in
                ("hidden", "layers", "batch", "noise_samples", "threads", "seeds")
                if getattr(cfg, k) < 1]
    problems += [f"{k}: must be >= 0, got {getattr(cfg, k)}" for k in ("teacher_epochs", "student_epochs")
                 if getattr(cfg, k) < 0]
    if cfg.aux < 2:
        problems.append(f"aux: a softmax over {cfg.aux} logit carries nothing; use >= 2")
    if cfg.noise not in ("gaussian", "uniform"):
        problems.append(f"noise: {cfg.noise!r} is not 'gaussian' or 'uniform'")
    if not 0 < cfg.test_fraction < 1:
        problems.append(f"test_fraction: must be in (0, 1), got {cfg.test_fraction}")
    if cfg.lr <= 0 or cfg.noise_std <= 0:
        problems.append("lr and noise_std must be > 0")
    return problems


def make_mlp(cfg: MLPConfig, seed: int) -> nn.Module:
    """64 -> hidden x layers -> 10 + aux, ReLU; weights N(0, 1/d_in) as in the paper, zero biases."""
    dims = [64] + [cfg.hidden] * cfg.layers
    mods: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):  # nn.Linear's default init draws from (and advances) the global RNG
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        mods.append(nn.Linear(dims[-1], N_CLASSES + cfg.aux))
    net = nn.Sequential(*mods)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / m.in_features ** 0.5)
                m.bias.zero_()
    return net


def _stream(seed: int, purpose: int) -> int:
    """Independent sub-seed per (replicate, purpose), so seed s's noise is not seed s+1's init."""
    return seeds.word(seed, purpose)


def load_digits_split(cfg: MLPConfig, seed: int):
    """(X_train, y_train, X_test, y_test) as tensors; a seeded stratified split of the 1797 digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=cfg.test_fraction, random_state=seed, stratify=y)
    if cfg.standardise:
        mu, sd = Xtr.mean(0), Xtr.std(0) + 1.0  # +1: constant border pixels stay finite; pixels span 0..16
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    else:
        Xtr, Xte = Xtr / 16.0, Xte / 16.0
    f, i = torch.float32, torch.long
    return torch.tensor(Xtr, dtype=f), torch.tensor(ytr, dtype=i), torch.tensor(Xte, dtype=f), torch.tensor(yte, dtype=i)


def _batches(n: int, batch: int, epochs: int, seed: int):
    """Shuffled index batches, reproducible from seed alone."""
    rng = seeds.rng(seed)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n))
        yield from perm.split(batch)


def train_teacher(model: nn.Module, X, y, cfg: MLPConfig, seed: int) -> nn.Module:
    """Cross-entropy on the 10 class logits only: the aux logits get no direct gradient."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    for idx in _batches(len(X), cfg.batch, cfg.teacher_epochs, seed):
        loss = F.cross_entropy(model(X[idx])[:, :N_CLASSES], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def write_aux_logits(model: nn.Module, cfg: MLPConfig, seed: int):
    """The channel: what a model writes for others. Noise in, softmax over the aux logits out.
    Returns (inputs [n, 64], targets [n, aux]); class logits are dropped here, never shipped."""
    g = torch.Generator().manual_seed(seed)
    if cfg.noise == "uniform":  # U(-sqrt 3, sqrt 3): unit variance, like the Gaussian
        x = (torch.rand(cfg.noise_samples, 64, generator=g) * 2 - 1) * 3 ** 0.5
    else:
        x = torch.randn(cfg.noise_samples, 64, generator=g)
    x = x * cfg.noise_std
    with torch.no_grad():
        model.eval()
        soft = model(x)[:, N_CLASSES:].softmax(-1)
    return x, soft


def distill(student: nn.Module, data, cfg: MLPConfig, seed: int) -> nn.Module:
    """KL(teacher || student) on the aux-logit softmax only; the class logits get no direct gradient."""
    x, target = data
    assert target.shape[1] == cfg.aux, "the channel carries aux logits only"
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    student.train()
    for idx in _batches(len(x), cfg.batch, cfg.student_epochs, seed):
        logp = student(x[idx])[:, N_CLASSES:].log_softmax(-1)
        loss = F.kl_div(logp, target[idx], reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return student


@torch.no_grad()
def accuracy(model: nn.Module, X, y) -> float:
    """Top-1 accuracy of the argmax over the 10 class logits."""
    model.eval()
    return float((model(X)[:, :N_CLASSES].argmax(-1) == y).float().mean())


def one_seed(cfg: MLPConfig, s: int) -> dict:
    """One replicate: teacher, same-init student and different-init student, all from seed s."""
    Xtr, ytr, Xte, yte = load_digits_split(cfg, s)
    init = make_mlp(cfg, s)
    teacher = train_teacher(copy.deepcopy(init), Xtr, ytr, cfg, seed=_stream(s, 1))
    data = write_aux_logits(teacher, cfg, seed=_stream(s, 2))
    # both students see the same data in the same order; only their starting weights differ
    same = distill(copy.deepcopy(init), data, cfg, seed=_stream(s, 3))
    other = distill(make_mlp(cfg, seeds.offset(s, DIFFERENT_INIT)), data, cfg, seed=_stream(s, 3))
    return {"teacher": accuracy(teacher, Xte, yte), "same_init": accuracy(same, Xte, yte),
            "different_init": accuracy(other, Xte, yte), "init": accuracy(init, Xte, yte)}


def run(cfg: MLPConfig, log=print) -> dict:
    """cfg.seeds replicates from cfg.seed; 95% Student-t intervals over seeds."""
    problems = check(cfg)
    if problems:
        raise EcosimError("invalid config:\n  " + "\n  ".join(problems))
    t0 = time.time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        rows = []
        for s in range(cfg.seed, cfg.seed + cfg.seeds):
            rows.append(one_seed(cfg, s))
            r = rows[-1]
            log(f"seed {s}: teacher {r['teacher']:.3f}  same-init {r['same_init']:.3f}  "
                f"different-init {r['different_init']:.3f}")
    finally:
        torch.set_num_threads(old_threads)
    res = {}
    for k in ("same_init", "different_init", "teacher", "init"):
        per = [r[k] for r in rows]
        m, lo, hi = mean_ci(per)
        res[k] = {"acc": m, "ci": [lo, hi], "per_seed": per}
    res.update(chance=1 / N_CLASSES, seconds=round(time.time() - t0, 2), config=asdict(cfg))
    return res


def table(res: dict) -> str:
    rows = [("teacher (trained on digits)", "teacher"), ("student, same init", "same_init"),
            ("student, different init", "different_init"), ("untrained init", "init")]
    n = len(res["same_init"]["per_seed"])
    out = [f"MLP aux-logit subliminal learning on digits ({n} seeds, chance {res['chance']:.2f})",
           f"{'model':<30}{'test acc':>9}  95% CI"]
    for name, k in rows:
        r = res[k]
        out.append(f"{name:<30}{r['acc']:>9.3f}  [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    out.append(f"{res['seconds']:.1f} s")
    return "\n".join(out)
