"""ecosim: a simulator of model ecosystems in which traits pass through synthetic data."""
__version__ = "0.1.0"


class EcosimError(Exception):
    """A problem with the user's input (config, paths, checkpoints): printed as one clear line."""


class Interrupted(EcosimError):
    """The user stopped a run (Ctrl-C): finished nodes are kept; the message says how to go on."""
