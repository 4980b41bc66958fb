"""Design-space exploration: NSGA-II (pymoo) over tiling and precision of both engines.

`problem.py` holds the space, objectives and constraints; `run.py` searches, picks the design and
writes the outputs. See DESIGN.md §7.
"""

from dtlgen.dse.problem import OBJECTIVES, DSEProblem, Fixed, InfoLossTable, Space, Workload
from dtlgen.dse.run import DSEResult, choose, run_dse

__all__ = ["OBJECTIVES", "DSEProblem", "DSEResult", "Fixed", "InfoLossTable", "Space", "Workload", "choose", "run_dse"]
