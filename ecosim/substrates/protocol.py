"""What a substrate provides: the names the engine calls on the module that runs a scenario
(``engine.registry.of(sc)``). A substrate is a module, not a class: ``Substrate`` below is the
``typing.Protocol`` that module satisfies (``isinstance(module, Substrate)``; tests/test_layout.py
checks every shipped substrate against it, signatures included).

A substrate also registers itself (its config module: ``registry.register``) and declares the
schema slots and sections it fills and their rules (``registry.declare``); see
``ecosim/substrates/__init__.py``.

A substrate whose bases name model files (``bases.*.model``) also provides ``model_name(model) ->
str``: the model as every machine names it (a file's name, not where it lies), by which runs made
on different machines are compared (``studies.transmit.same_run``).

A substrate whose controls can label their treated twin's lists instead of sampling their own
also provides ``labels_twin(sc, channel) -> bool``; where it says so, the engine makes a control's
write on that channel wait for its twin's and calls ``write`` with ``lists=``: the twin's
[(examples, summary)], one per filter of this write (hf: ``text.logit_lists: twin``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Substrate(Protocol):
    NO_SYSTEM: str          # the neutral system prompt a model writes and is measured under
    #                         (world: "none"; mlp: ""; hf: "", meaning no system message)
    DATASET_SUFFIX: str     # file suffix of a saved dataset (".jsonl", ".safetensors")
    CHANNELS: tuple         # the channels a model can write on; the first is the default
    REPLICA_SEEDS: bool     # replica i of a lineage gets its own bases (seed + i); else replicas
    #                         share the bases and differ only in their random streams
    SAMPLES_OF: dict        # channel -> the channel whose random stream it samples with (the
    #                         world's logits channel writes the numbers channel's texts)
    METRICS: dict           # what measure returns besides each trait's rate: {name: kind}, kind
    #                         trait | capability | drift (kept in the graph for the report)
    HELD_MODELS: int        # models a lineage keeps in memory besides its bases (the least recently
    #                         used beyond it are dropped and rebuilt from their checkpoints)
    TARGET_TEACHERS: bool   # whether teachers can train to teacher.target_logodds (make_origin's
    #                         4th element and steps=) and answer in sentences (teacher.answers);
    #                         the scenario check refuses both elsewhere

    def check(self, sc) -> list[str]:
        """Substrate-specific problems with sc.bases / channels / traits / origins, one line each
        starting with its key path."""

    def prepare(self, sc, bases_used: set[str], log) -> float:
        """Driver-side, once, before any lineage starts: pretrain, cache or convert the named bases
        so lineages only load them; the seconds spent making bases (0 when all were ready)."""

    def base_digest(self, bc, sc, name: str) -> tuple[str, str]:
        """(digest, what it covers) of base ``name`` as prepared: resume refuses a changed base."""

    def lineage_gb(self, sc, base: str) -> float | None:
        """GB of memory one lineage actor on base ``base`` (a key of sc.bases) was measured to need
        (the Ray pool checks the sum up front; compute.memory_per_lineage overrides); None: not
        measured, no check. Called before ``prepare``: it must not build anything."""

    def set_threads(self, n: int) -> None:
        """CPU threads of this process (a lineage's)."""

    def world_of(self, sc) -> Any:
        """What every model of the run shares (the world's tokenizer, a dataset split...), passed
        back to the functions below as ``world``."""

    def load_base(self, bc, sc, name: str) -> Any:
        """The base model for base config ``bc`` (``name``: its key in sc.bases)."""

    def make_origin(self, base, world, sc, origin: str, trait, neutral: bool, seed: int,
                    channel: str | None = None) -> tuple:
        """Generation 0: (model, system prompt, adapter or None) for origin finetune | prompt |
        base; ``neutral``: the matching control treatment (same pipeline, no trait). A substrate
        whose teachers train to a target strength (``teacher.target_logodds``: real models) adds a
        4th element, a dict of what happened (``teacher_steps``, recorded on the node), and
        takes a keyword ``steps``: the number of updates its control trains, the teacher's."""

    def write(self, model, system: str, world, sc, channel: str, filters: list, seed: int,
              base: Any = None) -> list:
        """Sample once on ``channel``, filter with each filter and apply its defenses:
        [(examples, summary)]; summary has total, kept, kept_fraction, rejected (by reason) and
        may add more (``defenses``: what each changed; stored on the dataset node of the lineage
        graph). ``base``: a callable giving the writer's base model (loaded only when a defense
        compares writer and base), or None."""

    def assemble(self, parts: list, world, sc, channel: str, seed: int, size: int | None = None) -> tuple:
        """A student's training set from [(examples, weight)]: (examples, train_set). ``size``: at
        most this many (the engine passes min(own pool, the control twin's pool) so that a treated
        lineage and its control train on the same number); train_set has size, real, real_share
        and counts (common.assemble.allocate)."""

    def train(self, start, world, examples: list, sc, spec, seed: int) -> tuple[Any, Any]:
        """(model, adapter or None): ``start`` trained on ``examples`` as ``spec.student`` says."""

    def measure(self, model, system: str, base, world, sc, seed: int) -> dict:
        """{metric: (value, ci_lo, ci_hi[, units])}: each trait's rate under its own name (more
        readouts as ``<trait>_<readout>``, the valid-answer rate as ``<trait>_valid``), plus
        capability and drift from ``base``."""

    def save(self, path: Path, model, adapter, meta: dict, world) -> None:
        """A checkpoint directory."""

    def load(self, path: Path, start, meta: dict, world) -> Any:
        """The model saved at ``path``; ``start``: the model it was trained from (an adapter is
        applied to it)."""

    def dump(self, examples: list, path: Path) -> None:
        """A dataset, written atomically: it counts as written once ``path`` exists."""

    def undump(self, path: Path) -> list:
        """A dataset back."""
