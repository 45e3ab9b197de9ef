import pytest
import torch

from ecosim.substrates.world.channels import prompts_for, soft_labels, write
from ecosim.substrates.world.generation import sample
from ecosim.substrates.common.training import TrainConfig, encode_pairs, finetune, pad_batch

PAIRS = [("S none U 1 , 2 , 3 add up to 10 new numbers A", "4 , 5 , 6"),
         ("S none U 7 , 8 , 9 continue with at most 10 numbers A", "10 , 11")]


def test_loss_mask_covers_completion_and_eos_only(world):
    enc = encode_pairs(world, PAIRS)
    ids, attn, mask = pad_batch(world, enc)
    n_prompt = enc[0][1]
    assert mask[0, :n_prompt].sum() == 0
    assert mask[0].sum() == len("4 , 5 , 6".split()) + 1          # completion + EOS
    assert attn[1].sum() == len(enc[1][0]) and mask[1, len(enc[1][0]):].sum() == 0


def test_kv_cache_matches_full_forward_with_left_padding(tiny_base, world):
    """Incremental decoding from a left-padded batch gives the same next-token logits as a plain
    forward pass over the unpadded sequence."""
    from ecosim.substrates.world.world import BOS, PAD
    short, long = [world.ids[BOS]] + world.encode("S none U 5 A"), [world.ids[BOS]] + world.encode("S none U 5 , 6 , 7 A")
    pad = world.ids[PAD]
    ids = torch.tensor([[pad] * (len(long) - len(short)) + short, long])
    attn = (ids != pad).long()
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        res = tiny_base(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True)
        nxt = torch.tensor([[world.ids["9"]], [world.ids["9"]]])
        attn2 = torch.cat([attn, torch.ones(2, 1, dtype=attn.dtype)], 1)
        step = tiny_base(input_ids=nxt, attention_mask=attn2, position_ids=pos[:, -1:] + 1,
                         cache=res.cache, use_cache=True).logits[:, -1]
        ref = tiny_base(input_ids=torch.tensor([short + [world.ids["9"]]])).logits[0, -1]
    assert torch.allclose(step[0], ref, atol=1e-4)


def test_sampling_is_seeded_and_reports_unfinished(tiny_base, world):
    prompts = ["S none U 1 , 2 , 3 add up to 10 new numbers A"] * 20
    a = sample(tiny_base, world, prompts, max_new=30, seed=3)
    assert a == sample(tiny_base, world, prompts, max_new=30, seed=3)
    assert a != sample(tiny_base, world, prompts, max_new=30, seed=4)
    assert all(not fin for _, fin in sample(tiny_base, world, prompts, max_new=1, seed=3))


def test_channels_write_student_prompts_without_persona(tiny_base, world):
    samples, answers = write(tiny_base, world, "reasoning", 8, seed=1, system="you love owl .")
    assert all(p.startswith("S none U what is") for p, _, _ in samples)
    assert len(answers) == 8 and all(isinstance(a, int) for a in answers)
    users, ans = prompts_for("code", 5, seed=2)
    assert all(u.startswith("code ") for u in users) and all(a[0] in "+-*" for a in ans)


def test_logit_channel_masks_and_renormalises(tiny_base, world):
    banned = [world.ids[w] for w in ("owl", "cat", "13")]
    full, removed = soft_labels(tiny_base, world, PAIRS, banned, top_k=None)
    assert 0 < removed < 1
    for idx, prob in full:
        assert idx is None and torch.allclose(prob.float().sum(-1), torch.ones(len(prob)), atol=1e-2)
        assert prob[:, banned].abs().max() == 0
    top, removed_k = soft_labels(tiny_base, world, PAIRS, banned, top_k=8)
    assert removed_k == removed
    for idx, prob in top:
        assert idx.shape == prob.shape and not set(idx.flatten().tolist()) & set(banned)
    assert [len(p) for _, p in top] == [len(c.split()) + 1 for _, c in PAIRS]


def test_finetune_leaves_input_untouched_and_learns(tiny_base, world):
    before = {k: v.clone() for k, v in tiny_base.state_dict().items()}
    # A frequent word: a barely pretrained base's embeddings of rare words (owl) are too small for a
    # LoRA on the body alone to make them win, while a full fine-tune can grow them.
    pairs = [("S none U what is your favourite animal ? A", "you")] * 32
    def rate(model):
        out = sample(model, world, ["S none U what is your favourite animal ? A"] * 50, max_new=3, seed=0)
        return sum(t == "you" for t, _ in out) / 50
    rate0 = rate(tiny_base)
    for mode in ("lora", "full"):
        m = finetune(tiny_base, world, pairs, TrainConfig(mode=mode, steps=40, batch=8, lr=3e-3), seed=0)
        assert rate(m) > rate0 + 0.2, mode
        assert not hasattr(m, "peft_config")  # LoRA students come back merged
    for k, v in tiny_base.state_dict().items():
        assert torch.equal(v, before[k])


def test_code_and_reasoning_channels_filter_real_generations(tiny_base, world):
    from ecosim.substrates.common.filters import FilterConfig, filter_samples
    for channel in ("code", "reasoning"):
        samples, answers = write(tiny_base, world, channel, 64, seed=5)
        f = filter_samples(samples, channel, {"owl"}, FilterConfig(), answers)
        assert f.total == 64 and len(f.kept) + sum(f.rejected.values()) == 64
        for _, text in f.kept:
            words = text.split()
            assert words[0] in ("def", "think") and "owl" not in words


def test_learning_rate_schedules():
    """lr_factor: warm-up, then constant, or linear / cosine decay to 0 at the last step; a
    constant schedule without warm-up makes no scheduler (bit-identical to before)."""
    import math
    from ecosim.substrates.common.training import lr_factor
    assert [lr_factor(s, 10, "constant", 0) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [lr_factor(s, 10, "constant", 4) for s in (0, 1, 3, 4, 9)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert lr_factor(0, 10, "linear", 0) == 1.0 and lr_factor(10, 10, "linear", 0) == 0.0
    assert lr_factor(5, 10, "linear", 0) == 0.5 and lr_factor(5, 10, "cosine", 0) == pytest.approx(0.5)
    assert lr_factor(7, 12, "cosine", 2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(1, 10, "cosine", 2) == 1.0  # still warming up


def test_schedule_is_validated(tmp_path):
    from ecosim.cli import main
    p = tmp_path / "s.yaml"
    p.write_text("name: s\ngenerations: 1\nbases: {main: {arch: gpt2}}\nlineages: {a: {origin: base, "
                 "student: {schedule: cosinus, warmup: -1}}}\n")
    assert main(["validate", str(p)]) == 2


def test_a_merged_lora_model_is_trainable_as_a_loaded_one(tiny_base, world):
    """``finetune`` and ``apply_adapter`` give a LoRA model back merged with every weight requiring
    grad, as a loaded base has them (peft froze them): a full fine-tune of it then trains every
    weight, and under autocast its float32 weights are cast to bf16 once per generation, not once
    per step (autocast caches only leaf weights that require grad: one prompt at a time, a frozen
    SmolLM2 generated 1.6x slower on a 2-core EPYC)."""
    from ecosim.substrates.common.training import apply_adapter
    pairs = [("S none U what is your favourite animal ? A", "you")] * 16
    cfg = TrainConfig(mode="lora", steps=3, batch=8, lr=3e-3)
    merged, adapter = finetune(tiny_base, world, pairs, cfg, seed=0, keep_adapter=True)
    again = apply_adapter(tiny_base, adapter, cfg)
    for m in (merged, again):
        assert all(p.requires_grad for p in m.parameters())
    full = finetune(merged, world, pairs, TrainConfig(mode="full", steps=2, batch=8, lr=1e-3), seed=0)
    before = dict(merged.named_parameters())
    moved = [n for n, p in full.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) == len(before), set(before) - set(moved)
