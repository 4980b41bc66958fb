"""The Verilator runtime's object cache (dtlgen.sim.objcache): compiled once per command line, source,
compiler and include directory; anything else passes through to the compiler."""

from __future__ import annotations

import subprocess

import pytest

from dtlgen.sim import objcache


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    include = tmp_path / "include"
    include.mkdir()
    (include / "rt.cpp").write_text("int runtime() { return 7; }\n")
    (tmp_path / "model.cpp").write_text("int model() { return 1; }\n")
    monkeypatch.setenv(objcache.INCLUDE_ENV, str(include))
    monkeypatch.setenv("DTLGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    calls = []
    real = subprocess.run

    def counting(argv, **kwargs):
        calls.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(objcache.subprocess, "run", counting)
    return include, calls


def test_a_runtime_object_is_compiled_once_and_then_copied(runtime, tmp_path):
    include, calls = runtime
    command = ["c++", "-Os", "-c", "-o", "rt.o", str(include / "rt.cpp")]
    assert objcache.main(command) == 0 and len(calls) == 1
    first = (tmp_path / "rt.o").read_bytes()
    (tmp_path / "rt.o").unlink()
    assert objcache.main(command) == 0 and len(calls) == 1  # from the cache
    assert (tmp_path / "rt.o").read_bytes() == first
    assert objcache.main(["c++", "-O1", "-c", "-o", "rt.o", str(include / "rt.cpp")]) == 0 and len(calls) == 2
    (include / "rt.cpp").write_text("int runtime() { return 8; }\n")  # another source: compiled afresh
    assert objcache.main(command) == 0 and len(calls) == 3
    assert len(list((tmp_path / "cache" / objcache.KIND).iterdir())) == 3


def test_other_sources_and_failures_pass_through(runtime, tmp_path):
    include, calls = runtime
    for _ in range(2):
        assert objcache.main(["c++", "-c", "-o", "model.o", str(tmp_path / "model.cpp")]) == 0
    assert len(calls) == 2 and not (tmp_path / "cache" / objcache.KIND).exists()
    (include / "bad.cpp").write_text("this is not C++\n")
    assert objcache.main(["c++", "-c", "-o", "bad.o", str(include / "bad.cpp")]) != 0
    assert not list((tmp_path / "cache" / objcache.KIND).iterdir())  # nothing stored for a failed compile


def test_the_runtime_objects_are_swept_like_every_other_kind(runtime, tmp_path, monkeypatch):
    include, calls = runtime
    monkeypatch.setenv("DTLGEN_CACHE_GB", "0")  # keep only the newest
    for level in ("-O0", "-O1"):
        assert objcache.main(["c++", level, "-c", "-o", "rt.o", str(include / "rt.cpp")]) == 0
    assert len(calls) == 2 and len(list((tmp_path / "cache" / objcache.KIND).iterdir())) == 1


def test_cocotbs_main_is_cached_per_model_header(runtime, tmp_path, monkeypatch):
    """cocotb's verilator.cpp includes the build's Vtop.h: one object per header's bytes, reused across builds
    of the same top, compiled afresh for another header."""
    _, calls = runtime
    main = tmp_path / "cocotb" / "verilator.cpp"
    main.parent.mkdir()
    main.write_text('#include "Vtop.h"\nint main() { return TOP; }\n')
    monkeypatch.setenv(objcache.MAIN_ENV, str(main))
    (tmp_path / "Vtop.h").write_text("#define TOP 0\n")
    command = ["c++", "-I.", "-c", "-o", "verilator.o", str(main)]
    assert objcache.main(command) == 0 and len(calls) == 1
    (tmp_path / "verilator.o").unlink()
    assert objcache.main(command) == 0 and len(calls) == 1  # the same header: from the cache
    (tmp_path / "Vtop.h").write_text("#define TOP 1\n")
    assert objcache.main(command) == 0 and len(calls) == 2  # another top's header: compiled
