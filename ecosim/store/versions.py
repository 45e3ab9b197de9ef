"""Versions recorded in a run directory (``versions.json``): ecosim, torch, transformers, peft,
Python, and the checkpoint format. ``--resume`` checks them: a run whose checkpoints are in
another format cannot be resumed (an error that says what to do); other differences are warnings,
since a resumed run then mixes results from two sets of versions."""
from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ecosim.errors import EcosimError
from ecosim.version import __version__
from ecosim.store.rundir import atomic_write

# What a checkpoint in a run directory means (its files, their layout, what the engine reloads
# from them). Bump it whenever that changes, so that resuming an older run fails clearly instead
# of loading something else than was saved.
CHECKPOINT_FORMAT = 1

# ecosim's own version (ecosim/version.py: ``ecosim.__version__``, pyproject's too) moves whenever what a
# run directory holds changes: a checkpoint's or a dataset's format, or the files kept beside them
# (0.2.0: the package layout, and digests.json of the bases and config.yaml). Resuming a run made
# with another version then prints one warning line (``check``):
#   resume: warning: RUN_DIR: made with ecosim 0.1.0, resuming with ecosim 0.2.0: results computed
#   before and after the resume may differ
# and a checkpoint format this ecosim cannot read (CHECKPOINT_FORMAT) stops the resume instead.

FILE = "versions.json"
PACKAGES = ("torch", "transformers", "peft")
WARN_ON = ("ecosim", "torch", "transformers", "peft")  # a difference in these: a warning line


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def current() -> dict:
    """The versions this process runs with."""
    return {"ecosim": __version__, **{p: _installed(p) for p in PACKAGES},
            "python": platform.python_version(), "checkpoint_format": CHECKPOINT_FORMAT}


def record(run_dir) -> dict:
    """Write ``run_dir/versions.json`` (atomically) with the current versions; returns them."""
    v = current()
    atomic_write(Path(run_dir) / FILE, lambda tmp: tmp.write_text(json.dumps(v, indent=1) + "\n"))
    return v


def check(run_dir) -> list[str]:
    """Compare ``run_dir``'s recorded versions with the current ones. Raises EcosimError when the
    checkpoint format differs; returns one warning line per other difference (ecosim, torch,
    transformers, peft), or one line saying the versions are unknown (a run directory made before
    versions were recorded, or an unreadable versions.json); [] when all match."""
    run_dir = Path(run_dir)
    now = current()
    path = run_dir / FILE
    try:
        was = json.loads(path.read_text())
        if not isinstance(was, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        return [f"{run_dir}: versions unknown (no {FILE}: the run was made before ecosim recorded "
                f"them); resuming with {_describe(now)}"]
    except (OSError, ValueError) as e:
        return [f"{run_dir}: versions unknown ({FILE} is unreadable: {e}); resuming with {_describe(now)}"]
    fmt, made_by = was.get("checkpoint_format", "unknown"), was.get("ecosim", "unknown")
    if fmt != now["checkpoint_format"]:
        raise EcosimError(
            f"{run_dir}: its checkpoints are in format {fmt} (ecosim {made_by}), and this ecosim "
            f"{now['ecosim']} reads format {now['checkpoint_format']}, so the run cannot be resumed: "
            f"resume it with ecosim {made_by}, or start a new run of its scenario (its config.yaml)")
    return [f"{run_dir}: made with {name} {was.get(name)}, resuming with {name} {now[name]}: "
            f"results computed before and after the resume may differ"
            for name in WARN_ON if was.get(name) != now[name]]


def _describe(v: dict) -> str:
    return ", ".join(f"{k} {v[k]}" for k in WARN_ON)
