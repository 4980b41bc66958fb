"""C-simulation on hostile input: a project directory is data from a stranger.

Stimulus: one small generated project (digits_cnn with FE and RL engines), then its memory image,
descriptor lists and test vectors changed the ways a stranger (or a bad disk) could change them:
addresses past the image, more descriptors than it holds, a truncated image, descriptor fields set
to extremes, random bytes. Expectation: C never reads or writes outside its buffers; every case is
one line of DesignError naming the problem and the fix. Runs that could crash C run in a child
process, so a crash fails the test instead of killing pytest. Also: a compiler that does not exist
or produces nothing, an unusable cache, Ctrl-C during the build.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtlgen.boards import load_board
from dtlgen.csim import CsimEngines
from dtlgen.csim import engines as csim_engines
from dtlgen.csim.run import run_testbench
from dtlgen.errors import DesignError, DtlgenError, ToolMissingError
from dtlgen.generator.project import generate_project
from dtlgen.model import load_model
from dtlgen.model.calibration import calibration_inputs
from dtlgen.perf import Design

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}
FE_DESC, RL_DESC = 64, 128  # descriptor bytes (generator.fe_program, host.rl_program)
REGENERATE = "dtlgen generate"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    network = load_model("digits_cnn")
    calib = calibration_inputs(network, 0)
    return generate_project(network, Design.from_dict(DESIGN), load_board(DESIGN["board"]), calib, calib[0],
                            tmp_path_factory.mktemp("hostile") / "prj")


@pytest.fixture(scope="module")
def engines(project):
    return CsimEngines(project)


@pytest.fixture(scope="module")
def fe(project):
    """The FE run `dtlgen csim` does: the image of sim/expected.npz and the list of sim/program.json."""
    program = json.loads((project / "sim" / "program.json").read_text())
    memory = np.array(np.load(project / "sim" / "expected.npz")["memory"], dtype=np.uint8)
    extent = max(op["out_addr"] + int(np.prod(op["out_shape"])) for op in program["ops"])
    return memory, program["desc_addr"], len(program["ops"]), extent


@pytest.fixture(scope="module")
def rl_images(project):
    """The RL engine's image just before step 0's forward and backward lists run, as the testbench has it
    (tb_data/rl_script.txt replayed up to those runs): (memory, desc_addr, count) for each list."""
    data = project / "hls" / "tb_data"
    memory, runs = None, []
    for line in (data / "rl_script.txt").read_text().splitlines():
        words = line.split()
        if words[0] == "memory":
            memory = np.zeros(int(words[1]), dtype=np.uint8)
        elif words[0] == "load":
            blob = np.frombuffer((data / words[2]).read_bytes(), dtype=np.uint8)
            memory[int(words[1]):int(words[1]) + len(blob)] = blob
        elif words[0] == "run":
            runs.append((memory.copy(), int(words[1]), int(words[2])))
            if len(runs) == 3:  # LOAD_P, step 0's forward list, its backward list
                break
    return {"forward": runs[1], "backward": runs[2]}


def one_line(message: str) -> str:
    assert "\n" not in message and REGENERATE in message, message
    return message


def refused(run, *args) -> str:
    """The one-line message of the DesignError that `run(*args)` raises (for what never reaches C)."""
    with pytest.raises(DesignError) as caught:
        run(*args)
    return one_line(str(caught.value))


def field(offset: int, value: int, size: int) -> list[tuple[int, int]]:
    """(offset, byte) pairs that set a little-endian field of `size` bytes."""
    return [(offset + i, b) for i, b in enumerate(int(value).to_bytes(size, "little"))]


# --- a child process for everything that reaches C: a crash fails the test, it does not kill pytest ------
WORKER = r"""
import json, sys
import numpy as np
from dtlgen.csim import CsimEngines
from dtlgen.errors import DesignError
engines = CsimEngines(sys.argv[1])
images = {name: (np.fromfile(path, dtype=np.uint8), int(addr), int(count))
          for name, path, addr, count in json.loads(sys.argv[2])}
for line in sys.stdin:
    job = json.loads(line)
    base, desc_addr, count = images[job["list"]]
    memory = base[:job.get("cut", len(base))].copy()
    for offset, value in job.get("bytes", []):
        memory[desc_addr + offset] = value
    run = engines.run_fe if job["list"] == "fe" else engines.run_rl
    try:
        run(memory, job.get("desc_addr", desc_addr), job.get("count", count))
        answer = {"ran": True}
    except DesignError as error:
        answer = {"ran": False, "message": str(error)}
    print(json.dumps(answer), flush=True)
"""


class Worker:
    """A child process that runs jobs through CsimEngines, one JSON line each way: a list ("fe",
    "forward", "backward"), bytes to change from its desc_addr on, a desc_addr, count or image length
    other than the list's."""

    def __init__(self, args: list[str]):
        self.args = args
        self.process = None

    @classmethod
    def on(cls, project, images, folder) -> Worker:
        specs = []
        for name, (memory, desc_addr, count) in images.items():
            memory.tofile(folder / f"{name}.bin")
            specs.append((name, str(folder / f"{name}.bin"), desc_addr, count))
        return cls([sys.executable, "-c", WORKER, str(project), json.dumps(specs)])

    def run(self, job: dict, timeout_s: float = 60.0) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
            line = self.process.stdout.readline() if ready else ""
        except BrokenPipeError:  # it died before it read the job
            line = ""
        if not line:
            self.process.kill()
            code = self.process.wait()
            stderr = self.process.stderr.read()[-2000:]
            self.process = None
            pytest.fail(f"the C-simulation died (exit {code}) or hung on {job}: {stderr}")
        return json.loads(line)

    def refused(self, **job) -> str:
        answer = self.run(job)
        assert not answer["ran"], f"the engine ran {job}"
        return one_line(answer["message"])

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            assert self.process.wait(timeout=30) == 0, self.process.stderr.read()[-2000:]


@pytest.fixture(scope="module")
def lists(fe, rl_images):
    """The FE list and step 0's RL lists: (image, desc_addr, count) each."""
    memory, desc_addr, count, _ = fe
    return {"fe": (memory, desc_addr, count), **rl_images}


@pytest.fixture(scope="module")
def worker(project, engines, lists, tmp_path_factory):
    w = Worker.on(project, lists, tmp_path_factory.mktemp("worker"))
    yield w
    w.close()


def test_the_worker_reports_a_crash_as_a_failure():
    """The harness itself: a child that dies by a signal fails the test (so the tests below can fail)."""
    crashing = Worker([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    with pytest.raises(pytest.fail.Exception, match="died"):
        crashing.run({"list": "fe"})


def test_the_untampered_lists_run(worker):
    for which in ("fe", "forward", "backward"):
        assert worker.run({"list": which}) == {"ran": True}


# --- the FE list: where it is, how long it is, the image it runs on ---------------------------------
def test_fe_descriptor_address_past_the_image(worker, fe):
    message = worker.refused(list="fe", desc_addr=2 ** 31)
    assert "descriptors of 64 bytes at 0x80000000" in message and f"{len(fe[0])}-byte memory image" in message


def test_fe_50_more_descriptors_than_the_program_has(worker, fe):
    """The extra 'descriptors' are the image's weights and activations: the first one the engine refuses
    comes after the real ones."""
    _, _, count, _ = fe
    message = worker.refused(list="fe", count=count + 50)
    index = int(message.split("FE descriptor ")[1].split()[0])
    assert count <= index < count + 50, message


def test_fe_descriptor_list_past_the_end_of_the_image(worker, fe):
    assert "outside the" in worker.refused(list="fe", desc_addr=len(fe[0]) - FE_DESC)


def test_fe_image_truncated_to_half_of_what_the_program_uses(worker, fe):
    extent = fe[3]
    assert f"outside the {extent // 2}-byte memory image" in worker.refused(list="fe", cut=extent // 2)


def test_fe_image_cut_right_after_what_the_program_uses_still_runs(engines, fe):
    """The checks refuse what reaches past the image, not a short image as such."""
    memory, desc_addr, count, extent = fe
    full, short = memory.copy(), memory[:extent].copy()
    engines.run_fe(full, desc_addr, count)
    engines.run_fe(short, desc_addr, count)
    assert np.array_equal(short, full[:extent])


@pytest.mark.parametrize("desc_addr, desc_count, name", [(-64, 4, "desc_addr"), (2 ** 32, 4, "desc_addr"),
                                                         (0, 1 << 16, "desc_count"), (0, 2.0, "desc_count")])
def test_fe_arguments_outside_the_ports_are_refused_before_c(engines, fe, desc_addr, desc_count, name):
    message = refused(engines.run_fe, fe[0].copy(), desc_addr, desc_count)
    assert f"{name}=" in message


# --- FE descriptor fields (64 bytes: w0 kind/act, w1 N | M<<16, w2 H | W<<16, w3 R | C<<16, w4 K | S<<8 |
# P<<16, w6 input, w7 weights, w8 biases, w9 output) ------------------------------------------------------
@pytest.mark.parametrize("name, offset, size, value, says", [
    ("kind", 0, 1, 0x0F, "kind 15 is not"),
    ("input channels N", 4, 2, 0xFFFF, "reads its input at bytes"),
    ("output channels M", 6, 2, 0xFFFF, "M=65535 output channels exceed the engine's bias table"),
    ("output rows R", 12, 2, 0xFFFF, "needs more input than"),
    ("kernel K", 16, 1, 0xFF, "kernel K=255 is outside"),
    ("stride S", 17, 1, 0xFF, "input window"),
    ("input address", 24, 4, 0xFFFFFF00, "reads its input at bytes 0xffffff00"),
    ("weight address", 28, 4, 0xFFFFFFF0, "reads its weights at bytes 0xfffffff0"),
    ("output address", 36, 4, 0x7FFFFFFF, "writes its output"),
])
def test_fe_descriptor_field_set_to_an_extreme_is_refused(worker, fe, name, offset, size, value, says):
    desc_addr = fe[1]
    message = worker.refused(list="fe", bytes=field(FE_DESC + offset, value, size))  # descriptor 1 (conv2)
    assert message.startswith(f"FE descriptor 1 at 0x{desc_addr + FE_DESC:x}") and says in message, (name, message)


# --- RL descriptor fields (128 bytes of 16-bit halves: h0 mode, h2 M, h3 N, h4 rows, h6 xa, h7 ya, h10 wbase,
# h12-13 DRAM address, h16 Mt, h17 Nt, h19 pitch_n, h22-23 beats) ---------------------------------------
@pytest.mark.parametrize("which, index, half, size, value, says", [
    ("forward", 0, 0, 2, 0x000F, "mode 15 is not"),
    ("forward", 0, 22, 4, 0xFFFFFFFF, "LOAD_A reads DRAM bytes"),
    ("forward", 0, 6, 2, 0xFFFF, "LOAD_A uses activation-stash words 65535-"),
    ("forward", 1, 4, 2, 0xFFFF, "FWD uses activation-stash words"),
    ("forward", 1, 16, 2, 0xFFFF, "FWD tiles Mt=65535"),
    ("forward", 1, 10, 2, 0xFFFF, "FWD uses weight tiles 65535-"),
    ("forward", 1, 19, 2, 0, "row pitches 0"),
    ("backward", 1, 3, 2, 0xFFFF, "tiles"),
    ("backward", 0, 12, 4, 0x7FFFFFF0, "LOAD_G reads DRAM bytes 0x7ffffff0"),
])
def test_rl_descriptor_field_set_to_an_extreme_is_refused(worker, rl_images, which, index, half, size, value, says):
    desc_addr = rl_images[which][1]
    message = worker.refused(list=which, bytes=field(index * RL_DESC + 2 * half, value, size))
    assert message.startswith(f"RL descriptor {index} at 0x{desc_addr + index * RL_DESC:x}") and says in message


def test_rl_list_past_the_image_longer_than_written_and_a_cut_image(worker, rl_images):
    memory, _, count = rl_images["forward"]
    assert "descriptors of 128 bytes at 0x80000000" in worker.refused(list="forward", desc_addr=2 ** 31)
    worker.refused(list="forward", count=count + 50)
    cut = len(memory) // 8  # the features the list loads lie beyond the cut
    assert f"outside the {cut}-byte memory image" in worker.refused(list="forward", cut=cut)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["fe", "forward", "backward"]))
def test_random_bytes_in_a_descriptor_list_never_crash(worker, lists, which, data):
    list_bytes = lists[which][2] * (FE_DESC if which == "fe" else RL_DESC)
    spots = st.tuples(st.integers(0, list_bytes - 1), st.integers(0, 255))
    corrupted = data.draw(st.lists(spots, min_size=1, max_size=8), label="(offset, byte) pairs")
    answer = worker.run({"list": which, "bytes": corrupted})
    if not answer["ran"]:
        assert "descriptor" in one_line(answer["message"]), answer["message"]


# --- the testbenches on tampered tb_data -------------------------------------------------------------
@pytest.fixture
def tb_data(project, tmp_path):
    copy = tmp_path / "tb_data"
    shutil.copytree(project / "hls" / "tb_data", copy)
    return copy


def test_testbench_refuses_a_truncated_vector(engines, tb_data):
    path = tb_data / "fe_op1.bin"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size // 2])
    message = refused(run_testbench, engines.built.testbenches["fe"], tb_data)
    assert f"tb_data/fe_op1.bin has {size // 2} bytes, the script expects {size}" in message


def test_testbench_refuses_an_oversized_vector(engines, tb_data):
    path = tb_data / "rl_params1.bin"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + bytes(1 << 20))
    message = refused(run_testbench, engines.built.testbenches["rl"], tb_data)
    assert f"rl_params1.bin has {size + (1 << 20)} bytes, the script expects {size}" in message


def test_testbench_refuses_a_tampered_descriptor(engines, tb_data):
    image = bytearray((tb_data / "fe_memory.bin").read_bytes())
    image[FE_DESC + 16] = 0xFF  # descriptor 1's kernel
    (tb_data / "fe_memory.bin").write_bytes(bytes(image))
    message = refused(run_testbench, engines.built.testbenches["fe"], tb_data)
    assert "fe_script.txt line 3: FE descriptor 1 at 0x40: kernel K=255" in message


@pytest.mark.parametrize("line, says", [("run 2147483648 4", "outside the"), ("memory 99999999999999", "'memory'"),
                                        ("load 0 ../../etc/passwd", "file name inside tb_data"),
                                        ("expect_rows 0 99999 99999 1 fe_op0.bin x", "the script expects")])
def test_testbench_refuses_a_malformed_script_line(engines, tb_data, line, says):
    script = tb_data / "fe_script.txt"
    lines = script.read_text().splitlines()
    script.write_text("\n".join(lines[:3] + [line] + lines[3:]) + "\n")
    message = refused(run_testbench, engines.built.testbenches["fe"], tb_data)
    assert "fe_script.txt line 4" in message and says in message


def test_a_testbench_killed_by_a_signal_is_one_line(tmp_path):
    executable = tmp_path / "tb_fe"
    executable.write_text("#!/bin/sh\necho 'half a line' >&2\nkill -SEGV $$\n")
    executable.chmod(0o755)
    message = refused(run_testbench, executable, tmp_path)
    assert "tb_fe" in message and "killed by SIGSEGV" in message and "half a line" in message


# --- compiler, cache, Ctrl-C -------------------------------------------------------------------------
def test_cxx_naming_no_program(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent")
    with pytest.raises(ToolMissingError, match="^CXX=/nonexistent names a program that does not exist") as caught:
        csim_engines.compiler()
    assert "g++ was not found" not in str(caught.value)


def test_cxx_that_produces_nothing(monkeypatch, project, tmp_path):
    monkeypatch.setenv("CXX", "true")
    with pytest.raises(ToolMissingError) as caught:
        csim_engines.build(project / "hls", tmp_path / "cache")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("CXX=true did not produce") and "C++14 compiler" in message
    assert list((tmp_path / "cache").iterdir()) == [], "the staging directory was left behind"


def test_dtlgen_cache_that_is_a_file(monkeypatch, project, tmp_path):
    cache = tmp_path / "not-a-directory"
    cache.write_text("")
    monkeypatch.setenv("DTLGEN_CACHE", str(cache))
    with pytest.raises(DtlgenError) as caught:
        csim_engines.build(project / "hls")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"DTLGEN_CACHE={cache}: cannot create") \
        and "writable directory" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_dtlgen_cache_that_is_read_only(monkeypatch, project, tmp_path):
    cache = tmp_path / "read-only"
    cache.mkdir(mode=0o555)
    monkeypatch.setenv("DTLGEN_CACHE", str(cache))
    with pytest.raises(DtlgenError, match="^DTLGEN_CACHE=.*writable directory"):
        csim_engines.build(project / "hls")


def test_ctrl_c_during_the_build_leaves_nothing_in_the_cache(monkeypatch, project, tmp_path):
    started = []

    class Interrupted(subprocess.Popen):
        def communicate(self, *args, **kwargs):
            raise KeyboardInterrupt

    def compile_job(command, **kwargs):  # a compiler job that runs until it is killed; Ctrl-C while waiting
        started.append(Interrupted(["sleep", "60"]))
        return started[-1]

    monkeypatch.setattr(csim_engines.subprocess, "Popen", compile_job)
    with pytest.raises(KeyboardInterrupt):
        csim_engines.build(project / "hls", tmp_path / "cache")
    assert started and all(job.poll() is not None for job in started), "compiler jobs were left running"
    assert list((tmp_path / "cache").iterdir()) == []
