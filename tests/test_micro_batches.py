"""compute.micro_batch_tokens, checkpointing and compile_layers: a training batch split into
micro-batches makes the same update (up to float rounding) as one pass, for sampled tokens and
soft labels alike; so do recomputed activations and compiled layers."""
import pytest
import torch

from ecosim.substrates.common.training import TrainConfig, batch_of, compile_layers, decoder_layers, encode_pairs, finetune, passes


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


PAIRS = [(f"User: list {i}\nAssistant:", " " + " ".join(str(3 * i + j) for j in range(2 + i % 4))) for i in range(10)]


def both_ways(base, world, mode: str, look, **setting):
    """(plainly trained model, the model trained with ``setting``, ``look(model)`` at each update
    of the second) after 3 updates of 4 on PAIRS, from one seed."""
    cfg = TrainConfig(mode=mode, rank=4, alpha=8, steps=3, batch=4, lr=1e-3)
    seen = []
    other = finetune(base, world, PAIRS, cfg, seed=0, probe=lambda k, m: seen.append(look(m)), **setting)
    return finetune(base, world, PAIRS, cfg, seed=0), other, seen


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_checkpointing_makes_the_same_update(tiny_base, world, mode):
    """compute.checkpointing recomputes activations in the backward pass: the same update, and the
    model it returns is no longer checkpointing (it measures and writes as any other)."""
    plain, ckpt, seen = both_ways(tiny_base, world, mode, checkpointing, checkpointing=True)
    assert seen == [True] * 3                                        # on while it trained
    a, b = plain.state_dict(), ckpt.state_dict()
    moved = max(float((a[k] - tiny_base.state_dict()[k]).abs().max()) for k in a)
    assert moved > 1e-4
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5 * max(1.0, moved)
    assert not checkpointing(ckpt) and not checkpointing(tiny_base)  # off after; the input untouched


def compiled_layers(model) -> list[bool]:
    """Whether each decoder layer of ``model`` runs through torch.compile."""
    return [layer._compiled_call_impl is not None for layer in decoder_layers(model)]


def test_compile_layers_on_and_off(tiny_base):
    """compute.compile_layers: every decoder layer compiled (lazily: nothing compiles here), then plain again."""
    import copy
    m = copy.deepcopy(tiny_base)
    assert len(decoder_layers(m)) == m.config.n_layer and not any(compiled_layers(m))
    compile_layers(m, True)
    assert all(compiled_layers(m))
    compile_layers(m, False)
    assert not any(compiled_layers(m))


def test_compile_layers_setting():
    """compute.compile_layers: off, lora (LoRA trainings only) or on; a YAML boolean is its word."""
    from ecosim.api import scenario_path
    from ecosim.engine.schema import load_scenario
    from ecosim.errors import EcosimError
    from ecosim.substrates.common.training import compiles
    q = scenario_path("quickstart")
    assert load_scenario(q).compute.compile_layers == "off"
    assert load_scenario(q, ["compute.compile_layers=true"]).compute.compile_layers == "on"
    assert load_scenario(q, ["compute.compile_layers=lora"]).compute.compile_layers == "lora"
    with pytest.raises(EcosimError, match=r"compute\.compile_layers: 'fast' is not one of"):
        load_scenario(q, ["compute.compile_layers=fast"])
    assert [compiles(s, m) for s in ("off", "lora", "on") for m in ("lora", "full")] == [
        False, False, True, False, True, True]


@pytest.mark.slow  # compiling on a CPU: about a minute
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_compiled_layers_make_the_same_update(tiny_base, world, mode):
    """Training through compiled layers gives the same update as plain layers; a probe along the
    way (a teacher's checks write and measure) and the model it returns run plainly."""
    import torch._dynamo
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]  # counted over the process
    plain, comp, seen = both_ways(tiny_base, world, mode, lambda m: any(compiled_layers(m)), compiled=True)
    assert seen == [False] * 3 and not any(compiled_layers(comp))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= graphs + 2  # it trained compiled (forward, backward)
    # compared by what the models compute: fused kernels round differently, and AdamW's first
    # steps move a weight whose gradient is rounding noise by up to the learning rate either way
    ids, attn, mask = batch_of(world, PAIRS)
    with torch.no_grad():
        base, a, b = (m(input_ids=ids, attention_mask=attn).logits for m in (tiny_base, plain, comp))
    moved = float((a - base).abs().max())
    assert moved > 1e-3                                              # training changed the model
    assert float((a - b).abs().max()) < 1e-4 * moved
