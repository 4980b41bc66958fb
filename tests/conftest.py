"""Set-up shared by every test: the C-simulation's HLS schedule estimate runs only where a test checks it.

`dtlgen csim` (dtlgen.csim.run) ends with the estimate: the engines built a second time with loop counters
(a g++ build of about 3 s a project) and run again. Only the tests marked `hls_estimate` read it (and
tests/csim/test_hls_estimate.py, which calls the estimator itself); elsewhere it reports the estimate
unavailable, as it does for a schedule it cannot model. A test run in another process (the CLI through
subprocess) still estimates.
"""

from __future__ import annotations

import pytest

from dtlgen.csim import run as csim_run
from dtlgen.csim.hls_estimate import UnmodelledSchedule

_ESTIMATE = {"wanted": False}


@pytest.fixture(scope="session", autouse=True)
def _estimate_only_where_checked():
    # (session scope: module fixtures that C-simulate a project run before any function fixture)
    original = csim_run.hls_estimate

    def gated(*args, **kwargs):
        if not _ESTIMATE["wanted"]:
            raise UnmodelledSchedule("not estimated in this test run (tests/conftest.py: only tests marked "
                                     "hls_estimate read it)")
        return original(*args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(csim_run, "hls_estimate", gated)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _estimate_marker(request):
    _ESTIMATE["wanted"] = request.node.get_closest_marker("hls_estimate") is not None
    yield
    _ESTIMATE["wanted"] = False
