"""The one place ecosim's version is written: pyproject.toml reads it (dynamic version),
``ecosim.__version__`` re-exports it, and store/versions.py says when it moves."""
__version__ = "0.2.0"
