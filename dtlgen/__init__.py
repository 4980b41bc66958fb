"""dtlgen: turn a deep-transfer-learning model into an FPGA accelerator that re-trains on the device."""

from dtlgen._version import __version__

# The Python API (dtlgen/api.py, docs/api.md), loaded on first use: `import dtlgen` stays cheap.
_API = ("ExploredDesign", "Project", "explore", "generate", "list_boards", "load_model", "open_project")
__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        from dtlgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'dtlgen' has no attribute '{name}'")
