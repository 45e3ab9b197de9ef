"""What a run builds on, with digests: ``digests.json`` in the run directory, written when a run
starts (once ``prepare`` has made its bases) and checked by ``--resume``.

A checkpoint in a run directory is usually a LoRA adapter over a base that is loaded again by
name (a world base from ``$ECOSIM_CACHE/bases``, a real model from its file or directory and its
converted copy in ``$ECOSIM_CACHE/real``), and every node was computed with the settings in
``config.yaml``. If either has changed since the run started, the finished nodes and the ones a
resume would compute belong to two different experiments. So::

    {"format": 1,
     "config.yaml": {"digest": sha256 of config.yaml's text, "text": that text (the resolved config)},
     "bases": {NAME: {"digest": sha256 of the base, "what": what was hashed (a path, or for an MLP
                                  base "no file: the initialisation from seed N")}}}

(under ``bases_per_seed``, each ecosystem seed's own bases too, as ``NAME@seedS``).

Each substrate module says what its base is (``base_digest(bc, sc, name) -> (digest, what)``):
world: the files of the cached base directory (or its checkpoint ``path``); hf: the model's
directory, or its GGUF file and the safetensors directory it was converted to; mlp: the initial
weights made from the base's seed (there is no file).

On resume: **refuse, not recompute.** A base or a config.yaml setting that differs from what the
run started with stops the resume with one line per change (EcosimError: exit code 2 from the
CLI) naming it, both digests (or the settings that differ) and what to do: restore it, or start
a new run. Recomputing instead would mean redoing every node (all of them stand on the base, or
were made under the old settings): that is a new run, which the user should start knowingly,
not one ``--resume`` starts in the old run's directory. Edits to config.yaml that change no
setting (a comment, the layout) are a note and the resume goes on. A run directory without
``digests.json`` (started before ecosim 0.2.0, or stopped before its bases were ready) resumes
as before, with one note line saying there is nothing to check; its digests are then recorded
from the bases this resume uses, for later resumes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ecosim.engine.config import leaves
from ecosim.errors import EcosimError
from ecosim.store.rundir import atomic_write

FILE = "digests.json"
FORMAT = 1
CONFIG = "config.yaml"


def _short(sha: str | None) -> str:
    return f"{sha[:8]}…" if sha else "none"


def bases_now(run_dir, sc, sub, names, more=None) -> dict:
    """{name: {"digest", "what"}} for the bases ``names`` as they are now (after ``prepare``);
    ``more``: {label: scenario} of further sets of the same bases (each seed's own bases under
    ``bases_per_seed``), recorded as ``name@label``."""
    out = {}
    for label, sc_l in [(None, sc), *sorted((more or {}).items())]:
        for name in sorted(names):
            try:
                sha, what = sub.base_digest(sc_l.bases[name], sc_l, name)
            except OSError as e:
                raise EcosimError(f"base {name!r}: cannot read it to compute its digest ({e}); is the base "
                                  f"(its file or cached directory) in place? (run {run_dir})") from None
            out[name if label is None else f"{name}@{label}"] = {"digest": sha, "what": what}
    return out


def record(run_dir, sc, sub, names, more=None) -> dict:
    """Write ``run_dir/digests.json`` (atomically) for config.yaml and the bases ``names``."""
    run_dir = Path(run_dir)
    text = (run_dir / CONFIG).read_text()
    d = {"format": FORMAT, CONFIG: {"digest": hashlib.sha256(text.encode()).hexdigest(), "text": text},
         "bases": bases_now(run_dir, sc, sub, names, more)}
    atomic_write(run_dir / FILE, lambda tmp: tmp.write_text(json.dumps(d, indent=1) + "\n"))
    return d


def _load(run_dir: Path) -> dict | None:
    try:
        d = json.loads((run_dir / FILE).read_text())
        return d if isinstance(d, dict) else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # present but unreadable: as good as none, but say so


def check_config(run_dir) -> list[str]:
    """Before a resume touches anything: raises EcosimError when config.yaml's settings differ
    from those the run started with; returns note lines (no digests to check; text edited but
    no setting changed), [] when it is unchanged."""
    run_dir = Path(run_dir)
    d = _load(run_dir)
    if not d:
        why = "is unreadable" if d == {} else "does not exist"
        return [f"{run_dir}: has no digests to check ({FILE} {why}: the run was started before ecosim 0.2.0 "
                f"recorded them, or stopped before its bases were ready), so whether its bases and "
                f"{CONFIG} changed since it started is unknown; resuming as before"]
    was = d.get(CONFIG) or {}
    text = (run_dir / CONFIG).read_text()
    if hashlib.sha256(text.encode()).hexdigest() == was.get("digest"):
        return []
    changed = _changed_settings(was.get("text"), text)
    if changed == []:
        return [f"{run_dir / CONFIG}: its text was edited since the run started but no setting changed; resuming"]
    if changed and all(c.startswith("compute.") for c in changed):  # threads, Ray, devices: how, not what
        return [f"{run_dir / CONFIG}: only how the run is computed changed since it started ({'; '.join(changed)}); "
                "the rest is computed that way (results may differ by float rounding); resuming"]
    what = "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "") if changed \
        else f"digest {_short(was.get('digest'))} -> {_short(hashlib.sha256(text.encode()).hexdigest())}"
    raise EcosimError(
        f"{run_dir / CONFIG} changed since this run started ({what}); its finished nodes were computed with the "
        f"old settings, so resuming would mix two experiments. Restore it (the original text is in "
        f"{run_dir / FILE}, under {CONFIG!r}), or start a new run of the edited config: ecosim run {run_dir / CONFIG}")


def check_bases(run_dir, sc, sub, names, more=None) -> list[str]:
    """After ``prepare`` made the bases: raises EcosimError when a base differs from the one the
    run started from (one line per changed base); returns note lines. A run without digests
    (``check_config`` said so) gets them recorded now, from the bases this resume uses."""
    run_dir = Path(run_dir)
    d = _load(run_dir)
    if not d:
        record(run_dir, sc, sub, names, more)
        return []
    was = d.get("bases") or {}
    now = bases_now(run_dir, sc, sub, names, more)
    notes, problems = [], []
    for name, n in now.items():
        w = was.get(name)
        if w is None or w.get("digest") is None or n["digest"] is None:
            notes.append(f"base {name!r}: no digest recorded when the run started, or none computable now; "
                         "not checked")
        elif w["digest"] != n["digest"]:
            problems.append(
                f"base {name!r} changed since this run started (digest {_short(w['digest'])} -> "
                f"{_short(n['digest'])}, {n['what']}); the run's checkpoints were trained from it (LoRA "
                f"checkpoints are adapters over it), so resuming would mix models of two bases. Restore "
                f"the base, or start a new run: ecosim run {run_dir / CONFIG}")
    if problems:
        raise EcosimError("\n".join(problems))
    return notes


def _changed_settings(old_text: str | None, new_text: str) -> list[str] | None:
    """'key: old -> new' for every setting that differs ([] when none does); None when the old
    text is not known or either text cannot be read as YAML."""
    if old_text is None:
        return None
    try:
        from omegaconf import OmegaConf
        old, new = (dict(leaves(OmegaConf.to_container(OmegaConf.create(t)))) for t in (old_text, new_text))
    except Exception:  # not YAML any more: the digests alone say it changed
        return None
    return [f"{k}: {old.get(k, '(unset)')} -> {new.get(k, '(unset)')}"
            for k in sorted(set(old) | set(new)) if old.get(k, _MISSING) != new.get(k, _MISSING)]


_MISSING = object()
