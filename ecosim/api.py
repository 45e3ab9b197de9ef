"""The Python API, for notebooks and scripts (the CLI calls the same functions):

    import ecosim
    r = ecosim.run("owl_chain", seeds=3)                  # a shipped scenario, a YAML path or a Scenario
    r = ecosim.run("quickstart", **{"data.real_share": 0.5}, data={"prompts": 3000})
    r.metrics                                             # pandas DataFrame: metrics.csv (a seed column)
    r.graph                                               # the networkx lineage graph
    r.summary                                             # the report's rows: lift over control, p, test
    s = ecosim.run("real_data_dilution", sweep={"data.real_share": [0, 0.5]}, seeds=3)
    s.metrics, s.summary, s.runs                          # every cell's rows with a column per knob
    ecosim.load_run("runs/owl_chain-20261126-101500")     # a finished (or interrupted) run or sweep
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ecosim.errors import EcosimError

# Shipped scenarios are package data (ecosim/scenarios/*.yaml; pyproject's package-data), so they
# are found after a plain ``pip install .`` too; the checkout's top-level ``scenarios`` links here.
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def scenario_path(name: str) -> str:
    """A YAML path, or the name of a shipped scenario (``ecosim list``)."""
    if os.path.exists(name) or name.endswith((".yaml", ".yml")) or os.sep in name:
        return name
    shipped = SCENARIOS / f"{name}.yaml"
    if shipped.exists():
        return str(shipped)
    known = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    raise EcosimError(f"{name}: no such file, and not a shipped scenario (those are: {', '.join(known)})")


@dataclass
class Run:
    """One run directory, read back: its scenario, lineage graph, metrics and report summary."""
    dir: Path
    scenario: object
    graph: object                       # networkx.DiGraph
    metrics: object                     # pandas.DataFrame of metrics.csv
    summary: list[dict] = field(default_factory=list)        # report.summary of the main trait
    by_generation: list[dict] = field(default_factory=list)  # report.by_generation of the main trait


@dataclass
class Sweep:
    """A sweep directory, read back: its grid, one Run per cell, and the cells compared."""
    dir: Path
    grid: dict
    runs: list[tuple[dict, Run]]        # (the cell's knob values, its run)
    metrics: object                     # pandas.DataFrame: every cell's metrics with a column per knob
    summary: list[dict] = field(default_factory=list)        # sweep.compare_cells


def _overrides(kw: dict) -> list[str]:
    """key=value overrides from keyword arguments: dotted keys as they are, dicts flattened."""
    from ecosim.engine.config import leaves
    return [f"{k}={json.dumps(v)}" for k, v in leaves(kw)]


def scenario(scenario_or_path, **overrides):
    """A checked Scenario: a shipped scenario's name, a YAML path or a Scenario, with overrides
    (``seeds=3``, ``**{"data.real_share": 0.5}``, ``data={"prompts": 3000}``, ``sweep={...}``)."""
    from ecosim.engine.schema import Scenario, check, load_scenario
    sweep = overrides.pop("sweep", None)  # its keys are dotted paths: set whole, not as overrides
    if isinstance(scenario_or_path, Scenario) and not overrides:
        sc = scenario_or_path
        problems = check(sc)
        if problems:
            raise EcosimError("invalid config:\n  " + "\n  ".join(problems))
    elif isinstance(scenario_or_path, Scenario):  # overrides go through the loader, as on the command line
        from omegaconf import OmegaConf
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(OmegaConf.to_yaml(OmegaConf.structured(scenario_or_path)))
        sc = load_scenario(f.name, _overrides(overrides))
        Path(f.name).unlink()
    else:
        sc = load_scenario(scenario_path(str(scenario_or_path)), _overrides(overrides))
    if sweep is not None:
        sc.sweep = dict(sweep)
        problems = check(sc)
        if problems:
            raise EcosimError("invalid config:\n  " + "\n  ".join(problems))
    return sc


def run(scenario_or_path, log=print, **overrides) -> Run | Sweep:
    """Run a scenario (every cell of it, if it has a ``sweep``) and read the result back."""
    from ecosim.engine import runner as ecosystem
    from ecosim.studies import sweep
    sc = scenario(scenario_or_path, **overrides)
    if sc.sweep:
        return load_run(sweep.run(sc, log=log)["dir"])
    return load_run(ecosystem.run(sc, log=log)["run_dir"])


def resume(run_dir, log=print, redo=()) -> Run | Sweep:
    """Finish an interrupted run or sweep (``redo``: nodes of a run to recompute)."""
    from ecosim.engine import runner as ecosystem
    from ecosim.studies import sweep
    d = Path(run_dir)
    if (d / "sweep.yaml").is_file():
        if redo:
            raise EcosimError("--redo names a node of one run; resume the cell's run directory instead")
        return load_run(sweep.run(root=d, resume=True, log=log)["dir"])
    return load_run(ecosystem.run(run_dir=d, resume=True, log=log, redo=redo)["run_dir"])


def load_run(run_dir) -> Run | Sweep:
    """A run or sweep directory as Python objects (a run still in progress loads too)."""
    import pandas as pd
    from ecosim.studies import sweep
    from ecosim.analysis.report import by_generation, load_run as load_graph, summary, trait_names
    from ecosim.engine.schema import read_saved  # its models may be on the machine that ran it
    d = Path(run_dir)
    if (d / "sweep.json").is_file():
        info, cells = sweep.load(d)
        runs = [(v, load_run(c)) for v, c in cells if (c / "graph.json").is_file()]
        sweep.write_metrics(d)
        return Sweep(d, info["grid"], runs, _csv(d / "metrics.csv", pd), sweep.compare_cells(d))
    G = load_graph(d)
    traits = trait_names(G)
    main = traits[0] if traits else None
    return Run(d, read_saved(str(d / "config.yaml")), G, _csv(d / "metrics.csv", pd),
               summary(G, main) if main else [], by_generation(G, main) if main else [])


def _csv(path: Path, pd):
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()
