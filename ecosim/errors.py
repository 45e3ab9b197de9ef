"""The two exceptions every layer raises (a leaf module: it imports nothing of ecosim)."""


class EcosimError(Exception):
    """A problem with the user's input (config, paths, checkpoints): printed as one clear line."""


class Interrupted(EcosimError):
    """The user stopped a run (Ctrl-C): finished nodes are kept; the message says how to go on."""
