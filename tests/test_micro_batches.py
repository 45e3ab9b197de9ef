"""compute.micro_batch_tokens: a training batch split into micro-batches makes the same update
(up to float rounding) as one pass, for sampled tokens and soft labels alike."""
import pytest
import torch

from ecosim.substrates.common.training import TrainConfig, encode_pairs, finetune, passes


def test_passes_cover_the_batch_within_the_budget():
    lengths = [5, 9, 3, 12, 4, 4]
    assert passes(lengths, None) == [[0, 1, 2, 3, 4, 5]]
    groups = passes(lengths, 20)
    assert [j for g in groups for j in g] == list(range(6))          # every example once, in order
    assert all(len(g) == 1 or len(g) * max(lengths[j] for j in g) <= 20 for g in groups)
    assert passes(lengths, 1) == [[j] for j in range(6)]             # one example at least per pass


@pytest.mark.parametrize("soft", [False, True])
def test_micro_batches_make_the_same_update(tiny_base, world, soft):
    pairs = [(f"User: list {i}\nAssistant:", " " + " ".join(str(7 * i + j) for j in range(2 + i % 5)))
             for i in range(12)]
    labels = None
    if soft:  # random soft labels over 5 tokens at each completion target (and EOS)
        g = torch.Generator().manual_seed(0)
        labels = []
        for ids, n_prompt in encode_pairs(world, pairs):
            T = len(ids) - n_prompt
            p = torch.rand(T, 5, generator=g)
            labels.append((torch.randint(0, len(world.vocab), (T, 5), generator=g), p / p.sum(-1, keepdim=True)))
    cfg = TrainConfig(rank=4, alpha=8, steps=3, batch=8, lr=1e-3)
    one = finetune(tiny_base, world, pairs, cfg, seed=0, soft=labels)
    split = finetune(tiny_base, world, pairs, cfg, seed=0, soft=labels, max_tokens=40)
    assert len(passes([len(x) for x, _ in encode_pairs(world, pairs[:8])], 40)) > 1  # it did split
    a, b = one.state_dict(), split.state_dict()
    moved = max(float((a[k] - tiny_base.state_dict()[k]).abs().max()) for k in a)
    assert moved > 1e-3                                              # training changed the model
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4 * max(1.0, moved)


def checkpointing(model) -> bool:
    """Whether any layer of ``model`` (peft-wrapped or not) checkpoints its activations."""
    m = model.get_base_model() if hasattr(model, "get_base_model") else model
    return any(getattr(x, "gradient_checkpointing", False) for x in m.modules())


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_checkpointing_makes_the_same_update(tiny_base, world, mode):
    """compute.checkpointing recomputes activations in the backward pass: the same update, and the
    model it returns is no longer checkpointing (it measures and writes as any other)."""
    pairs = [(f"User: list {i}\nAssistant:", " " + " ".join(str(3 * i + j) for j in range(2 + i % 4)))
             for i in range(10)]
    cfg = TrainConfig(mode=mode, rank=4, alpha=8, steps=3, batch=4, lr=1e-3)
    plain = finetune(tiny_base, world, pairs, cfg, seed=0)
    seen = []
    ckpt = finetune(tiny_base, world, pairs, cfg, seed=0, checkpointing=True,
                    probe=lambda k, m: seen.append(checkpointing(m)))
    assert seen == [True] * 3                                        # on while it trained
    a, b = plain.state_dict(), ckpt.state_dict()
    moved = max(float((a[k] - tiny_base.state_dict()[k]).abs().max()) for k in a)
    assert moved > 1e-4
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5 * max(1.0, moved)
    assert not checkpointing(ckpt) and not checkpointing(tiny_base)  # off after; the input untouched
