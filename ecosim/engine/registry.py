"""Which substrate runs a scenario, and the protocol every substrate module follows. The engine
(``ecosystem``, ``lineage``, ``scenario``) knows no particular substrate: it calls these names
on the module ``of(sc)`` returns.

Substrates: ``substrate_lm`` (language models of ecosim's synthetic world), ``substrate_hf``
(real Hugging Face chat models: a scenario whose bases set ``model``) and ``substrate_mlp`` (MLPs
passing auxiliary logits on noise).

The protocol (module-level names):

    NO_SYSTEM: str          the neutral system prompt a model writes and is measured under
                            (world: "none"; mlp: ""; hf: "", meaning no system message)
    DATASET_SUFFIX: str     file suffix of a saved dataset (".jsonl", ".safetensors")
    CHANNELS: tuple[str]    the channels a model can write on; the first is the default
    REPLICA_SEEDS: bool     replica i of a lineage gets its own bases (seed + i); else replicas
                            share the bases and differ only in their random streams
    SAMPLES_OF: dict        (optional) channel -> the channel whose random stream it samples with:
                            the world's logits channel writes the numbers channel's texts

    check(sc) -> list[str]  substrate-specific problems with sc.bases / channels / traits /
                            origins, one line each starting with its key path
    prepare(sc, bases_used: set[str], log) -> float
                            driver-side, once, before any lineage starts: pretrain, cache or
                            convert the named bases so lineages only load them; returns the
                            seconds spent making bases (0 when all were ready)
    world_of(sc)            what every model of the run shares (the world's tokenizer, a
                            dataset split...), passed back to the functions below as ``world``
    load_base(bc, sc, name) the base model for BaseConfig ``bc`` (``name``: its key in sc.bases)
    make_origin(base, world, sc, origin, trait, neutral, seed, channel) -> (model, system, adapter|None)
                            generation 0: origin finetune | prompt | base; ``neutral``: the
                            matching control treatment (same pipeline, no trait)
    write(model, system, world, sc, channel, filters, seed) -> [(examples, summary)]
                            sample once on ``channel`` and filter with each filter; summary has
                            total, kept, kept_fraction, rejected (by reason) and may add more
                            (stored on the dataset node of the lineage graph)
    assemble(parts, world, sc, channel, seed, size) -> (examples, train_set)
                            a student's training set from [(examples, weight)]; ``size``: at
                            most this many examples (None: no limit) on top of the substrate's
                            own cap (data.train_size...): the engine passes min(own pool, the
                            control twin's pool) so that a treated lineage and its control train
                            on the same number of examples; train_set has size, real, real_share
                            and counts (examples taken from each part: a part short of its
                            weight's share is topped up from the others, see ``allocate``)
    train(start, world, examples, sc, spec, seed) -> (model, adapter|None)
    measure(model, system, base, world, sc, seed) -> {metric: (value, ci_lo, ci_hi[, units])}
                            each trait's rate under its own name (optionally more readouts named
                            ``<trait>_<readout>``), plus capability and drift from ``base``
    save(path, model, adapter, meta, world) / load(path, start, meta, world)
                            a checkpoint directory; ``start`` is the model ``model`` was trained
                            from (a LoRA adapter is applied to it)
    dump(examples, path) / undump(path)
                            a dataset; dump writes atomically (rundir.atomic_write): a dataset
                            counts as written once ``path`` exists
"""
from __future__ import annotations

from ecosim.errors import EcosimError


def of(sc):
    """The substrate module that runs scenario ``sc``."""
    if sc.substrate == "mlp":
        from ecosim.substrates.mlp import substrate as substrate_mlp
        return substrate_mlp
    real = sorted(n for n, b in sc.bases.items() if b.model)
    if not real:
        from ecosim.substrates.world import substrate as substrate_lm
        return substrate_lm
    world = sorted(n for n in sc.bases if n not in real)
    if world:
        raise EcosimError("bases: world bases and real models cannot be mixed in one scenario: a student "
                          f"learns text written in its own format; world bases: {world}, real models: {real}")
    import importlib
    try:  # imported only here: it pulls in what real models need
        return importlib.import_module("ecosim.substrates.hf.substrate")
    except ModuleNotFoundError as e:
        if e.name != "ecosim.substrates.hf.substrate":
            raise
        raise EcosimError(f"bases.{real[0]}.model: real models need ecosim.substrates.hf, which this "
                          "installation does not have") from None


def allocate(lens: list[int], weights: list[float], size: int) -> list[int]:
    """How many examples to take from each part: min(size, all there is) in all, in proportion to
    ``weights``, each at most its part's length; what a short part cannot give goes to the others
    (so that two sets asked for the same size get exactly that size)."""
    counts = [0] * len(lens)
    left = min(size, sum(lens))
    while left > 0:
        room = [i for i in range(len(lens)) if counts[i] < lens[i]]
        tw = sum(weights[i] for i in room)
        ideal = {i: left * weights[i] / tw for i in room}
        give = {i: min(lens[i] - counts[i], int(ideal[i])) for i in room}
        if not any(give.values()):  # every share is below one example: the largest shares get one
            for i in sorted(room, key=lambda i: -ideal[i])[:left]:
                counts[i] += 1
            break
        for i, k in give.items():
            counts[i] += k
        left -= sum(give.values())
    return counts
