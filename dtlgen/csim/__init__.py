"""C-simulation of a project's HLS engines with g++ (no vendor tools): build, run, check (dtlgen csim)."""

from dtlgen.csim.engines import CsimDevice, CsimEngines, ap_types_dir, build
from dtlgen.csim.run import csim_project

__all__ = ["CsimDevice", "CsimEngines", "ap_types_dir", "build", "csim_project"]
