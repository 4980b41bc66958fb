"""The build cache stays within DTLGEN_CACHE_GB: least recently used builds go first, nothing else is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from dtlgen.cache import cache_limit_bytes, sweep
from dtlgen.errors import DtlgenError

PATTERN = r"(fe|rl)_[0-9a-f]{16}"


def entry(folder, name, size, age):
    path = folder / name
    path.mkdir()
    (path / "Vtop").write_bytes(b"x" * size)
    stamp = 1_000_000 + age
    os.utime(path, (stamp, stamp))
    return path


def test_sweep_removes_least_recently_used_builds_only(tmp_path):
    old = entry(tmp_path, "fe_" + "0" * 16, 400, 1)
    mid = entry(tmp_path, "rl_" + "1" * 16, 400, 2)
    new = entry(tmp_path, "fe_" + "2" * 16, 400, 3)
    foreign = tmp_path / "my_notes"  # not a name dtlgen gives a build
    foreign.mkdir()
    (foreign / "big").write_bytes(b"y" * 5000)
    stray = tmp_path / ("rl_" + "3" * 16)  # a file with a build's name is not a build folder
    stray.write_text("not a folder")
    removed = sweep(tmp_path, PATTERN, new, limit=900)
    assert removed == [old]
    assert mid.exists() and new.exists() and (foreign / "big").exists()
    assert sweep(tmp_path, PATTERN, new, limit=0) == [mid]  # the build just made always stays
    assert new.exists() and foreign.exists() and stray.exists()


def test_sweep_keeps_a_build_marked_used(tmp_path):
    a = entry(tmp_path, "fe_" + "a" * 16, 400, 1)
    b = entry(tmp_path, "fe_" + "b" * 16, 400, 2)
    c = entry(tmp_path, "fe_" + "c" * 16, 400, 3)
    os.utime(a)  # reused now: the newest mark
    assert sweep(tmp_path, PATTERN, c, limit=800) == [b]
    assert a.exists() and c.exists()


@pytest.mark.parametrize("value", ["lots", "-1", "nan", "inf", "5GB"])
def test_bad_cache_limit_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv("DTLGEN_CACHE_GB", value)
    with pytest.raises(DtlgenError, match="DTLGEN_CACHE_GB"):
        cache_limit_bytes()


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, 1000), min_size=1, max_size=8), limit=st.integers(0, 4000))
def test_sweep_leaves_at_most_the_limit_or_only_the_newest(tmp_path_factory, sizes, limit):
    folder = tmp_path_factory.mktemp("cache")
    paths = [entry(folder, f"rl_{i:016x}", size, i) for i, size in enumerate(sizes)]
    removed = sweep(folder, PATTERN, paths[-1], limit=limit)
    left = [p for p in paths if p.exists()]
    assert set(removed) | set(left) == set(paths) and paths[-1] in left
    assert sum(sizes[paths.index(p)] for p in left) <= limit or left == [paths[-1]]
    assert removed == paths[:len(removed)]  # oldest first


def test_cache_info_and_clear_count_and_remove_dtlgens_builds_only(tmp_path, monkeypatch, capsys):
    import json

    from dtlgen.cli import main

    monkeypatch.setenv("DTLGEN_CACHE", str(tmp_path))
    (tmp_path / "verilator").mkdir()
    (tmp_path / "csim").mkdir()
    entry(tmp_path / "verilator", "fe_" + "a" * 16, 300, 1)
    entry(tmp_path / "verilator", "axi_" + "b" * 16, 200, 2)
    entry(tmp_path / "csim", "c" * 20, 100, 3)
    foreign = [entry(tmp_path / "verilator", "fe_build_of_mine", 50, 4), entry(tmp_path / "csim", "notes", 50, 5)]
    (tmp_path / "csim" / ("d" * 20)).write_text("a file, not a build")
    assert main(["cache", "info", "--json"]) == 0
    kinds = {k["kind"]: k for k in json.loads(capsys.readouterr().out)["kinds"]}
    assert (kinds["verilator"]["entries"], kinds["verilator"]["bytes"]) == (2, 500)
    assert (kinds["csim"]["entries"], kinds["csim"]["bytes"]) == (1, 100)
    assert main(["cache", "clear", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed_entries"] == 3
    assert all(path.exists() for path in foreign) and (tmp_path / "csim" / ("d" * 20)).is_file()
    assert sorted(p.name for p in (tmp_path / "verilator").iterdir()) == ["fe_build_of_mine"]
    assert main(["cache", "info"]) == 0 and "swept to DTLGEN_CACHE_GB" in capsys.readouterr().out


def test_cache_commands_refuse_a_cache_that_is_a_file(tmp_path, monkeypatch, capsys):
    from dtlgen.cli import main

    monkeypatch.setenv("DTLGEN_CACHE", str(tmp_path / "notes.txt"))
    (tmp_path / "notes.txt").write_text("mine")
    for action in ("info", "clear"):
        assert main(["cache", action]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a folder" in err and "DTLGEN_CACHE" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_two_builds_of_one_parameter_set_at_once_build_it_once(tmp_path, monkeypatch):
    """Two simulations that need the same Verilator build at the same moment (two dtlgen commands, or a
    benchmark beside the tests) wrote into one folder and broke each other's make: now one builds and the
    other waits on the set's lock file and finds it built. The runner is a stand-in that takes a while."""
    import threading
    import time

    import cocotb_tools.runner

    from dtlgen.sim import fe_sim

    source = tmp_path / "top.sv"
    source.write_text("module top; endmodule\n")
    active, builds = [], []

    class SlowRunner:
        def build(self, sources, hdl_toplevel, build_dir, **_):
            assert not active, "two builds of one set at once"
            active.append(1)
            time.sleep(0.3)
            Path(build_dir).mkdir(parents=True, exist_ok=True)
            (Path(build_dir) / hdl_toplevel).write_text("built")
            builds.append(build_dir)
            active.pop()

    monkeypatch.setattr(cocotb_tools.runner, "get_runner", lambda name: SlowRunner())
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        fe_sim.build_top([source], "top", {"N": 1}, "fe", tmp_path / "cache"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 2 and results[0] == results[1] == builds[0]
