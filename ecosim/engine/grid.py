"""A scenario's sweep grid (``sweep: {key path: [values]}``): its cells, the scenario of each cell,
and the grid's problems. The sweep study (studies/sweep.py) runs the cells; validation checks them."""
from __future__ import annotations

import dataclasses
import itertools

from omegaconf import OmegaConf

from ecosim.engine.config import unknown_keys

MAX_CELLS = 200  # each cell is a whole run (times its seeds); more is a typo in a grid

NOT_KNOBS = {"sweep": "a sweep has one grid", "seeds": "seeds replicate every cell; set seeds: N",
             "out_dir": "every cell's run goes in the sweep's directory", "name": "the cells share the scenario's name"}


def cells(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def cell_scenario(sc, values: dict):
    """The scenario of one cell: ``sc`` without its grid, each key set to the cell's value."""
    conf = OmegaConf.structured(dataclasses.replace(sc, sweep={}))
    for k, v in values.items():
        OmegaConf.update(conf, k, v, merge=True)
    return OmegaConf.to_object(conf)


def check(sc, check_scenario) -> list[str]:
    """Problems of a scenario's grid: its keys (each a scenario setting), its values (each cell
    checked as a scenario by ``check_scenario``, its problems named with the cell) and its size."""
    p = []
    for k, vals in sc.sweep.items():
        where = f"sweep.{k}"
        if k.split(".")[0] in NOT_KNOBS:
            p.append(f"{where}: not a knob ({NOT_KNOBS[k.split('.')[0]]})")
            continue
        nested: dict = {}
        node = nested
        for part in k.split(".")[:-1]:
            node = node.setdefault(part, {})
        node[k.split(".")[-1]] = 0
        # a lineage, base or trait named in the path must exist: unknown names are not new entries here
        for section in ("lineages", "bases", "traits"):
            parts = k.split(".")
            if parts[0] == section and len(parts) > 1 and parts[1] not in getattr(sc, section):
                p.append(f"{where}: no {section[:-1]} named {parts[1]!r} in {section} ({sorted(getattr(sc, section))})")
                break
        else:
            p += [f"sweep.{m}" for _, m in unknown_keys(type(sc), nested, "")]
        if not isinstance(vals, list) or not vals:
            p.append(f"{where}: give a list of at least one value (got {vals!r})")
    if p:
        return p
    grid = cells(sc.sweep)
    if len(grid) > MAX_CELLS:
        return [f"sweep: {len(grid)} cells; at most {MAX_CELLS} (each one is a whole run; a typo?)"]
    seen = set()
    for values in grid:
        label = ", ".join(f"{k}={v!r}" for k, v in values.items())
        try:
            cell = cell_scenario(sc, values)
        except Exception as e:  # OmegaConf's type errors: a value that does not fit its key
            p.append(f"sweep cell {label}: {str(e).splitlines()[0]}")
            continue
        for m in check_scenario(cell):
            if m not in seen:  # a problem every cell shares is the scenario's own: said once
                seen.add(m)
                p.append(f"sweep cell {label}: {m}")
    return p
