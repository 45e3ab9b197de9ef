"""ecosim: a simulator of model ecosystems in which traits pass through synthetic data."""
from ecosim.version import __version__  # noqa: F401  (its one home: ecosim/version.py)
from ecosim.errors import EcosimError, Interrupted  # noqa: F401  (ecosim.EcosimError: the public name)


def run(scenario_or_path, log=print, **overrides):
    """Run a scenario or sweep and read it back (``ecosim.api.run``)."""
    from ecosim.api import run as _run
    return _run(scenario_or_path, log=log, **overrides)


def load_run(run_dir):
    """A run or sweep directory as Python objects (``ecosim.api.load_run``)."""
    from ecosim.api import load_run as _load_run
    return _load_run(run_dir)
