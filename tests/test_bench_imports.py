"""Every ``from ecosim... import name`` in bench/ (Python scripts and the Python inside shell
scripts) names a module and attribute that exist, and every ``module.attr`` a Python script uses
of an imported ecosim module exists: the bench scripts are not run by the default suite, and a
moved module or function must not leave one failing on a lent GPU."""
import ast
import importlib
import importlib.util
import re
import types
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
FROM = re.compile(r"from (ecosim[\w.]*) import ([\w, ]+)")


class Missing(str):
    """What is wrong with an import (a str: an imported value may be a str itself)."""


def _resolve(mod: str, name: str):
    """Attribute or submodule ``name`` of module ``mod``, or what is Missing."""
    try:
        m = importlib.import_module(mod)
    except ImportError as e:
        return Missing(f"{mod}: {e}")
    if hasattr(m, name):
        return getattr(m, name)
    if importlib.util.find_spec(f"{mod}.{name}") is not None:
        return importlib.import_module(f"{mod}.{name}")
    return Missing(f"{mod} has no {name}")


def _problems(script: str, src: str, python: bool) -> list[str]:
    bad, aliases = [], {}
    imports = ([(n.module, [(a.name, a.asname) for a in n.names]) for n in ast.walk(ast.parse(src))
                if isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0] == "ecosim"]
               if python else [(m, [(x.strip(), None) for x in names.split(",") if x.strip()])
                               for m, names in FROM.findall(src)])
    for mod, names in imports:
        for name, alias in names:
            got = _resolve(mod, name)
            if isinstance(got, Missing):
                bad.append(f"{script}: {got}")
            elif isinstance(got, types.ModuleType):
                aliases[alias or name] = got
    if python:  # module.attr of the ecosim modules it imported
        for n in ast.walk(ast.parse(src)):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases:
                if not hasattr(aliases[n.value.id], n.attr):
                    bad.append(f"{script}: {n.value.id}.{n.attr} does not exist")
    return bad


def test_bench_imports_resolve():
    scripts = sorted(BENCH.glob("*.py")) + sorted(BENCH.glob("*.sh"))
    assert len(scripts) > 10
    bad = [p for f in scripts for p in _problems(f.name, f.read_text(), f.suffix == ".py")]
    assert not bad, "\n".join(sorted(set(bad)))


def test_the_check_sees_a_moved_module():
    assert _problems("x.py", "from ecosim import text\n", True) == ["x.py: ecosim has no text"]
    assert _problems("x.py", "from ecosim.substrates.hf import text\ntext.nope(1)\n", True) == [
        "x.py: text.nope does not exist"]
    assert _problems("x.sh", "python3 -c 'from ecosim import realmodels; realmodels.f()'", False) == [
        "x.sh: ecosim has no realmodels"]
