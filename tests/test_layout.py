"""The package's architecture, as rules a change cannot break unnoticed: the engine imports no
model library and no substrate; no module of ecosim takes part in an import circle (imports
inside functions count); every shipped substrate satisfies the protocol."""
import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import ecosim

PKG = Path(ecosim.__file__).resolve().parent
FORBIDDEN = ("torch", "transformers", "peft", "ecosim.substrates")


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every ecosim module that ``name`` imports, anywhere in its file (functions included; a
    ``from pkg import x`` imports module pkg.x where x is one, else pkg)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


def test_no_import_circle_anywhere_in_ecosim():
    g = nx.DiGraph((m, d) for m in MODULES for d in imports_of(m))
    cycles = sorted(nx.simple_cycles(g), key=len)
    assert cycles == [], "import circles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles[:5])


def test_the_circle_check_sees_function_level_imports(tmp_path):
    # the check above must not pass because it misses imports inside functions
    assert "ecosim.engine.tasks" in imports_of("ecosim.engine.schema")
    assert "ecosim.substrates.common.assemble" in imports_of("ecosim.substrates.hf.substrate")  # inside assemble()


ENGINE = sorted(m for m in MODULES if m.startswith("ecosim.engine"))


def test_every_engine_module_imports_without_torch_or_a_substrate():
    code = ("import importlib, json, sys\n"
            f"out = {{}}\nfor m in {ENGINE!r}:\n"
            "    before = set(sys.modules)\n"
            "    importlib.import_module(m)\n"
            f"    out[m] = sorted(x for x in sys.modules if x.split('.')[0] in ('torch', 'transformers', 'peft')"
            " or x.startswith('ecosim.substrates'))\n"
            "print(json.dumps(out))")
    # one fresh interpreter per module: a module must not lean on what another one loaded
    for m in ENGINE:
        res = subprocess.run([sys.executable, "-c", code.replace(repr(ENGINE), repr([m]))],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout.splitlines()[-1]) == {m: []}


def test_the_engine_finds_substrates_only_through_the_registry():
    for m in ENGINE:
        assert not any(d.startswith(FORBIDDEN[-1]) for d in imports_of(m)), m


SUBSTRATES = ["world", "hf", "mlp"]


@pytest.mark.parametrize("name", SUBSTRATES)
def test_every_substrate_satisfies_the_protocol(name):
    from ecosim.substrates.protocol import Substrate
    sub = pytest.importorskip(f"ecosim.substrates.{name}.substrate")
    assert isinstance(sub, Substrate)
    for fn, proto in inspect.getmembers(Substrate, inspect.isfunction):
        if fn.startswith("_"):
            continue
        want = [p for p in inspect.signature(proto).parameters.values() if p.name != "self"]
        have = inspect.signature(getattr(sub, fn)).parameters
        required = [p for p in have.values() if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        # it takes the protocol's arguments, and needs no more than they give
        assert len(have) >= len(want) or any(p.kind is p.VAR_POSITIONAL for p in have.values()), (name, fn)
        assert len(required) <= len(want), (name, fn, list(have))


def test_each_substrate_is_registered_and_claims_its_scenarios():
    from ecosim.engine import registry
    from ecosim.engine.schema import Scenario
    from ecosim.substrates.common.bases import BaseConfig
    assert {"world", "hf", "mlp"} <= set(registry.entries())
    assert registry.entry(Scenario(bases={"main": BaseConfig()})).name == "world"
    assert registry.entry(Scenario(bases={"main": BaseConfig(model="smollm2")})).name == "hf"
    assert registry.entry(Scenario(substrate="mlp", bases={"main": BaseConfig(arch="mlp")})).name == "mlp"
