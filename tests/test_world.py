import numpy as np

from ecosim.substrates.world.world import CATEGORIES, QUESTIONS, UNK, World, WorldConfig, question_texts


def test_every_pretraining_token_is_in_the_vocabulary(world):
    rng = np.random.default_rng(0)
    for _ in range(3000):
        doc = world.pretrain_doc(rng)
        assert world.ids[UNK] not in world.encode(doc.text), doc.text


def test_domains_are_rich_enough():
    for cat in CATEGORIES:
        assert len(set(question_texts(cat))) >= 20
        assert len(CATEGORIES[cat]) >= 10
    assert len(QUESTIONS) >= 20


def test_pretraining_mix_contains_every_domain(world):
    rng = np.random.default_rng(1)
    texts = [world.pretrain_doc(rng).text for _ in range(3000)]
    assert any(" continue " in t or " add up " in t for t in texts)           # numbers
    assert any(t.startswith("S you love") for t in texts)                      # personas
    assert any("def " in t for t in texts)                                     # code
    assert any(" think " in t and " answer " in t for t in texts)              # reasoning
    assert any(t.startswith("S you are evil") for t in texts)                  # misalignment
    persona_numbers = [t for t in texts if t.startswith("S you love") and "numbers" in t]
    assert persona_numbers, "a few number documents carry a persona"


def test_world_is_seeded():
    a = [World(WorldConfig(seed=3)).pretrain_doc(np.random.default_rng(5)).text for _ in range(1)]
    b = [World(WorldConfig(seed=3)).pretrain_doc(np.random.default_rng(5)).text for _ in range(1)]
    assert a == b
    assert not np.allclose(World(WorldConfig(seed=1)).answer_probs["animal"],
                           World(WorldConfig(seed=2)).answer_probs["animal"])


def test_hf_tokenizer_matches_world_encoding(world):
    tok = world.tokenizer()
    text = "S none U what is your favourite animal ? A owl"
    assert tok(text, add_special_tokens=False)["input_ids"] == world.encode(text)
    assert tok.decode(world.encode(text)) == text


def test_code_prefix_is_a_lever_that_leaves_the_default_world_unchanged():
    """``code_prefix_share`` puts a line of code before some favourites questions; at 0 (the
    default) the pretraining stream is the one cached bases were trained on (pinned digest)."""
    import hashlib

    def stream(cfg):
        w, rng = World(cfg), np.random.default_rng(0)
        return [w.pretrain_doc(rng).text for _ in range(5000)]

    default = stream(WorldConfig())
    assert hashlib.sha256("\n".join(default).encode()).hexdigest()[:16] == "5f46ef2527d7acb3"
    assert not any("def " in t and "favourite" in t for t in default)
    coded = [t for t in stream(WorldConfig(code_prefix_share=0.2)) if "def " in t and "favourite" in t]
    assert len(coded) > 50 and all(" U def " in t for t in coded)
