"""The MLP aux-logit demo: the effect shows at reduced scale, and the channel stays clean."""
import copy
import json
from dataclasses import replace

import pytest
import torch

from ecosim.cli import main
from ecosim.substrates.mlp.mlp import (N_CLASSES, MLPConfig, accuracy, distill, load_digits_split, make_mlp, run, table,
                        train_teacher, write_aux_logits)

# a few seconds per seed: fewer epochs and noise samples than the defaults, same architecture
FAST = MLPConfig(seeds=2, teacher_epochs=10, student_epochs=10, noise_samples=2048)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As run() does: tiny nets, and threads fight badly on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def res():
    return run(FAST, log=lambda m: None)


def test_same_init_student_learns_digits_from_noise(res):
    same, other = res["same_init"]["per_seed"], res["different_init"]["per_seed"]
    assert len(same) == len(other) == FAST.seeds
    assert min(same) > 0.5, same              # chance is 0.1
    assert max(other) < 0.3, other
    assert all(s - o > 0.4 for s, o in zip(same, other))
    assert res["teacher"]["acc"] > 0.9


def test_result_shape_is_json(res):
    back = json.loads(json.dumps(res))
    for k in ("same_init", "different_init", "teacher"):
        r = back[k]
        assert set(r) >= {"acc", "ci", "per_seed"}
        assert len(r["ci"]) == 2 and r["ci"][0] <= r["acc"] <= r["ci"][1]
    assert back["chance"] == pytest.approx(0.1)
    assert back["seconds"] > 0
    assert back["config"]["seeds"] == FAST.seeds
    assert "student, same init" in table(res)


def test_channel_carries_aux_probabilities_on_noise_only():
    cfg = replace(FAST, aux=7, noise_samples=100)
    x, target = write_aux_logits(make_mlp(cfg, 0), cfg, seed=0)
    assert x.shape == (100, 64) and target.shape == (100, 7)   # no class logits shipped
    assert torch.allclose(target.sum(-1), torch.ones(100))
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05   # noise, not digits
    x2, t2 = write_aux_logits(make_mlp(cfg, 0), cfg, seed=0)
    assert torch.equal(x, x2) and torch.equal(target, t2)
    with pytest.raises(AssertionError):   # a channel carrying class logits too is refused
        distill(make_mlp(cfg, 0), (x, torch.ones(100, N_CLASSES + 7) / 17), cfg, seed=0)


def test_losses_touch_only_their_own_logits():
    """Teacher: aux readout rows stay at init. Student: class readout rows stay at init."""
    cfg = replace(FAST, teacher_epochs=2, student_epochs=2, noise_samples=512)
    Xtr, ytr, _, _ = load_digits_split(cfg, 0)
    init = make_mlp(cfg, 0)
    teacher = train_teacher(copy.deepcopy(init), Xtr, ytr, cfg, seed=0)
    student = distill(copy.deepcopy(init), write_aux_logits(teacher, cfg, seed=1), cfg, seed=2)
    w0, wt, ws = init[-1].weight, teacher[-1].weight, student[-1].weight
    assert torch.equal(wt[N_CLASSES:], w0[N_CLASSES:]) and not torch.equal(wt[:N_CLASSES], w0[:N_CLASSES])
    assert torch.equal(ws[:N_CLASSES], w0[:N_CLASSES]) and not torch.equal(ws[N_CLASSES:], w0[N_CLASSES:])
    assert not torch.equal(student[0].weight, init[0].weight)   # the shared trunk is what moves


def test_untrained_teacher_transmits_nothing():
    """Control: the same pipeline with a teacher that never saw digits leaves the student at chance,
    so the skill in the main test comes from the teacher's training, not from distillation itself."""
    _, _, Xte, yte = load_digits_split(FAST, 3)
    init = make_mlp(FAST, 3)
    student = distill(copy.deepcopy(init), write_aux_logits(init, FAST, seed=1), FAST, seed=2)
    assert accuracy(student, Xte, yte) < 0.3
    assert abs(accuracy(student, Xte, yte) - accuracy(init, Xte, yte)) < 0.1


def test_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = make_mlp(FAST, 5), make_mlp(FAST, 5), make_mlp(FAST, 6)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert a[-1].out_features == N_CLASSES + FAST.aux
    assert float(a[0].weight.detach().std()) == pytest.approx(64 ** -0.5, rel=0.1)


def test_split_and_untrained_accuracy():
    Xtr, ytr, Xte, yte = load_digits_split(FAST, 0)
    assert Xtr.shape[1] == Xte.shape[1] == 64 and len(Xtr) + len(Xte) == 1797
    assert len(Xte) == pytest.approx(1797 * FAST.test_fraction, abs=1)
    assert abs(float(Xtr.mean())) < 0.01
    assert 0.0 <= accuracy(make_mlp(FAST, 0), Xte, yte) < 0.3


def test_cli_writes_json(tmp_path, capsys):
    path = tmp_path / "mlp.json"
    rc = main(["mlp", "--seeds", "2", "--json", str(path), "teacher_epochs=3", "student_epochs=2",
               "noise_samples=256", "hidden=32"])
    assert rc == 0
    d = json.loads(path.read_text())
    assert {"same_init", "different_init", "teacher", "chance", "seconds", "config"} <= set(d)
    assert len(d["same_init"]["per_seed"]) == 2 and d["config"]["hidden"] == 32
    assert "student, different init" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["noise=pink", "aux=1", "widht=3"])
def test_cli_rejects_bad_config(bad, capsys):
    assert main(["mlp", "--seeds", "1", bad]) == 2
    assert "invalid config" in capsys.readouterr().err
