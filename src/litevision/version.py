"""The package version (one place: pyproject.toml reads it, ``litevision --version`` prints it)."""

__version__ = "0.2.0.dev0"
