"""dtlgen's version, apart from the package's __init__ (which loads the Python API on first use), so
that modules reading it import nothing else."""

__version__ = "0.1.0"
