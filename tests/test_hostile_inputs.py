"""dtlgen against a careless or hostile user: it never deletes what it did not write, never runs code
from a project folder, never crashes on a tampered project, never writes a design that cannot exist,
and answers every user error with one line on stderr and exit 1 (an interrupt with 130/143).

Each test re-runs a case that once went wrong (issue 13) and checks the outcome a user sees: exit
status, the one line, and that files which must survive did survive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from dtlgen.atomic import MANIFEST
from dtlgen.boards import load_board
from dtlgen.cli import main
from dtlgen.errors import DesignError, DtlgenError
from dtlgen.generator.loader import check_sources, load_rl_project, open_project

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    """The one message line on stderr (progress lines, "-> ..." and the DSE's bar, may precede it)."""
    progress = ("-> ", "NSGA-II generation", "   done in ", "   stopped after ")  # a task's opening and closing lines
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(progress)]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def _design(tmp_path: Path, name: str = "design.json", **changes) -> Path:
    data = json.loads(json.dumps(DESIGN))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """One generated digits_cnn project (FE 4x4, RL 8x8 on pynq-z2), copied by tests that tamper with it."""
    root = tmp_path_factory.mktemp("hostile")
    design = _design(root)
    out = root / "prj"
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy(project, tmp_path) -> Path:
    target = tmp_path / "prj"
    shutil.copytree(project, target, symlinks=True)
    return target


def test_a_project_with_widths_the_engines_cannot_take_is_refused(copy):
    """design.json and params.json agreeing on 12-bit weights (what generate refuses): the loader refuses
    it too, before any size is computed from the width (the engines take a byte at most)."""
    from dtlgen.generator.loader import open_project

    for name, section in (("design.json", "fe"), ("sim/params.json", None)):
        data = json.loads((copy / name).read_text())
        (data[section] if section else data)["w_bits"] = 12
        if section is None:
            data["pack"] = 0
        (copy / name).write_text(json.dumps(data))
    with pytest.raises(DesignError, match="w_bits 12, a_bits 8: the FE engines take elements of up to 8 bits"):
        open_project(copy)


# --- 1. never delete what dtlgen did not write --------------------------------------------------------
@pytest.mark.parametrize("command, marker", [("generate", "report.json"), ("dse", "pareto.json"),
                                             ("demo", "demo_report.json")])
def test_a_folder_with_foreign_files_survives(tmp_path, capsys, command, marker):
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    files = {marker: "{}", "thesis.tex": "\\section{mine}", "sub/data.csv": "a,b\n1,2\n"}
    for name, text in files.items():
        (folder / name).write_text(text)
    argv = {"generate": ["generate", "digits_cnn", "--design", _design(tmp_path), "--out", folder, "--force"],
            "dse": ["dse", "digits_cnn", "--board", "pynq-z2", "--out", folder, "--pop", "4", "--gens", "1"],
            "demo": ["demo", "--out", folder, "--force"]}[command]
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "not written by dtlgen" in _one_line(err)
    assert {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()} == files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".thesis")], "staging folder left behind"


def test_a_dtlgen_project_is_replaced_only_while_it_holds_only_dtlgen_files(tmp_path, capsys, copy):
    design = _design(tmp_path)
    argv = ["generate", "digits_cnn", "--design", design, "--out", copy]
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    (copy / "report.json").write_text("{}\n")  # an edit to a file dtlgen wrote
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "changed since dtlgen wrote it" in _one_line(err) and "--force" in err
    assert (copy / "report.json").read_text() == "{}\n"
    code, _, err = _run(capsys, *argv, "--force")
    assert code == 0 and json.loads((copy / "report.json").read_text())["model"] == "digits_cnn"
    (copy / "rtl" / "notes.md").write_text("mine")  # a file dtlgen did not write: even --force keeps it
    code, _, err = _run(capsys, *argv, "--force")
    assert code == 1 and "rtl/notes.md" in _one_line(err)
    assert (copy / "rtl" / "notes.md").read_text() == "mine"


def test_output_that_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", _design(tmp_path), "--out", afile)
    assert code == 1 and "not a directory" in _one_line(err) and afile.read_text() == "x"
    start = time.perf_counter()
    code, _, err = _run(capsys, "dse", "digits_cnn", "--board", "pynq-z2", "--out", "/proc/dtlgen-out")
    assert code == 1 and "/proc" in _one_line(err)
    assert time.perf_counter() - start < 30, "the DSE ran before the output was checked"


# --- 2. a project is data, never code -------------------------------------------------------------------
def test_a_crafted_pickle_in_a_project_is_never_loaded(copy, tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    (copy / "sim" / "rl_golden.pkl").write_bytes(pickle.dumps(Exploit()))
    data = open_project(copy)
    load_rl_project(data)
    assert not marker.exists()
    sources = Path(__file__).parents[1].joinpath("dtlgen").rglob("*.py")
    assert not [p for p in sources if "import pickle" in p.read_text()], "dtlgen must not unpickle anything"


@pytest.mark.parametrize("path, content", [
    ("hls/dtl_fe_engine.cpp", "\n#include <cstdlib>\nstatic int pwn = std::system(\"touch {marker}\");\n"),
    ("sim/test_fe_engine.py", "\nimport os; os.system('touch {marker}')\n"),
    ("rtl/fe_engine.sv", "\n// edited\n"),
])
def test_edited_sources_are_refused(copy, tmp_path, path, content):
    marker = tmp_path / "pwned"
    with open(copy / path, "a") as handle:
        handle.write(content.format(marker=marker))
    data = open_project(copy)
    with pytest.raises(DtlgenError, match="differs from what this dtlgen writes"):
        check_sources(data, load_rl_project(data), ("rtl", "sim", "hls"))
    assert not marker.exists()


@pytest.mark.parametrize("extra", ["hls/ap_int.h", "sim/numpy.py", "rtl/evil.svh"])
def test_extra_source_files_are_refused(copy, extra):
    (copy / extra).write_text("// not dtlgen's\n")
    data = open_project(copy)
    with pytest.raises(DtlgenError, match="dtlgen writes there"):
        check_sources(data, load_rl_project(data), ("rtl", "sim", "hls"))


def test_sim_of_a_tampered_test_module_runs_nothing(copy, tmp_path):
    marker = tmp_path / "pwned"
    (copy / "sim" / "test_fe_engine.py").write_text(f"import os\nos.system('touch {marker}')\n")
    result = subprocess.run([sys.executable, "-m", "dtlgen.cli", "sim", str(copy)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "test_fe_engine.py" in _one_line(result.stderr)
    assert not marker.exists()


# --- 3. tampered project files: exit 1, one line, never a signal ---------------------------------------
def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


TAMPERS = {
    "desc_addr 2^31": lambda p: _edit_json(p / "sim/program.json", lambda d: d.update(desc_addr=2 ** 31)),
    "50 extra ops": lambda p: _edit_json(p / "sim/program.json", lambda d: d["ops"].extend([d["ops"][-1]] * 50)),
    "truncated memory": lambda p: np.savez(p / "sim/expected.npz", **{
        k: (v[:len(v) // 2] if k == "memory" else v) for k, v in np.load(p / "sim/expected.npz").items()}),
    "garbage npz": lambda p: (p / "sim/expected.npz").write_bytes(b"PK\x03\x04garbage"),
    "missing program.json": lambda p: (p / "sim/program.json").unlink(),
    "missing rl_train.npz": lambda p: (p / "sim/rl_train.npz").unlink(),
    "weights of another shape": lambda p: np.savez(p / "sim/rl_train.npz", **{
        k: (v[:-1] if k.startswith("w_") else v) for k, v in np.load(p / "sim/rl_train.npz").items()}),
    "a pruning mask of another shape": lambda p: _add_mask(p, lambda w: np.ones((2, 2), dtype=np.uint8)),
    "a pruning mask of 2s": lambda p: _add_mask(p, lambda w: np.full(w.shape, 2, dtype=np.uint8)),
    "a float pruning mask": lambda p: _add_mask(p, lambda w: np.full(w.shape, 0.5)),
    "a pruning mask the layout has no room for": lambda p: _add_mask(p, lambda w: np.ones(w.shape, dtype=np.uint8)),
    "a layout dtlgen would not plan": lambda p: _edit_json(p / "sim/rl_layout.json", lambda d: d.update(w_depth=1 << 20)),
    "descriptor field": lambda p: _poke_memory(p, 4 * 4, 0xFF),  # w4: kernel 255
    "board record": lambda p: _edit_json(p / "design.json", lambda d: d["board_spec"]["resources"].update(dsp=9999)),
}


def _add_mask(project: Path, make) -> None:
    """rl_train.npz with a pruning mask (m_<layer>) made from the first retrainable layer's weights."""
    arrays = dict(np.load(project / "sim/rl_train.npz"))
    name = next(k for k in arrays if k.startswith("w_"))
    arrays["m_" + name[2:]] = make(arrays[name])
    np.savez(project / "sim/rl_train.npz", **arrays)


def _poke_memory(project: Path, offset: int, value: int) -> None:
    arrays = dict(np.load(project / "sim/expected.npz"))
    arrays["memory"] = arrays["memory"].copy()
    arrays["memory"][offset] = value
    np.savez(project / "sim/expected.npz", **arrays)


@pytest.mark.parametrize("case", list(TAMPERS))
def test_tampered_project_is_one_clear_error(copy, case):
    TAMPERS[case](copy)
    with pytest.raises(DtlgenError):
        data = open_project(copy)
        load_rl_project(data)


def test_csim_and_sim_agree_on_a_tampered_address(copy):
    TAMPERS["desc_addr 2^31"](copy)
    lines = {}
    for command in ("csim", "sim"):
        result = subprocess.run([sys.executable, "-m", "dtlgen.cli", command, str(copy)], capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 1, result.stderr
        lines[command] = _one_line(result.stderr).split(": error: ", 1)[1]
    assert lines["csim"] == lines["sim"] and "desc_addr" in lines["sim"]


# --- 4. designs that cannot exist are refused before anything is written ---------------------------------
@pytest.mark.parametrize("changes, words", [
    ({"fe__tm": 10 ** 12}, "fe.tm"),
    ({"fe__tm": 10000}, "fe.tm"),
    ({"clock_mhz": 1e-300}, "clock_mhz"),
    ({"clock_mhz": 1e300}, "clock_mhz"),
    ({"fe__tm": 64, "fe__tn": 64}, "dsp"),
    ({"rl__acc_bits": 8}, "acc_bits"),
    ({"per_layer": []}, "per_layer"),
    ({"per_layer": {"conv99": {}}}, "conv99"),
])
def test_impossible_designs_are_refused(tmp_path, capsys, changes, words):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", _design(tmp_path, **changes), "--out", out)
    assert code == 1 and words in _one_line(err)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_design_for_another_model_or_split_is_refused(tmp_path, capsys):
    dse = tmp_path / "dse"
    code, _, err = _run(capsys, "dse", "digits_cnn", "--board", "pynq-z2", "--out", dse, "--pop", "8", "--gens", "2")
    assert code == 0, err
    code, _, err = _run(capsys, "generate", "vgg16_cifar", "--design", dse / "design.json", "--out", tmp_path / "p")
    assert code == 1 and "made for digits_cnn" in _one_line(err)
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", dse / "design.json", "--out", tmp_path / "p",
                        "--retrain-last", "1")
    assert code == 1 and "conflicts with the split" in _one_line(err)
    code, _, err = _run(capsys, "perf", "digits_cnn", "--design", dse / "design.json", "--retrain-last", "1")
    assert code == 1 and "conflicts with the split" in _one_line(err)
    assert not (tmp_path / "p").exists()


# --- 5. custom boards travel with the design --------------------------------------------------------------
def test_a_custom_board_round_trips_through_dse_generate_and_csim(tmp_path, capsys):
    board = load_board("pynq-z2").to_dict()
    board["name"] = "my-zynq"
    board["resources"]["dsp"] = 300
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(board))
    dse = tmp_path / "dse"
    code, _, err = _run(capsys, "dse", "digits_cnn", "--board", path, "--out", dse, "--pop", "8", "--gens", "2")
    assert code == 0, err
    design = json.loads((dse / "design.json").read_text())
    assert design["board"] == "my-zynq" and design["board_spec"]["resources"]["dsp"] == 300
    path.unlink()  # the design carries its board: the YAML file is no longer needed
    code, out, err = _run(capsys, "perf", "digits_cnn", "--design", dse / "design.json")
    assert code == 0 and "my-zynq" in out, err
    prj = tmp_path / "prj"
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", dse / "design.json", "--out", prj)
    assert code == 0, err
    assert json.loads((prj / "report.json").read_text())["board"] == "my-zynq"
    code, _, err = _run(capsys, "csim", prj, "--steps", "1")
    assert code == 0, err
    # the same name as a shipped board, other contents: the design's own record wins, never the shipped one
    code, _, err = _run(capsys, "perf", "digits_cnn", "--design", dse / "design.json", "--board", "pynq-z2")
    assert code == 1 and "not the board" in _one_line(err)


def test_a_board_part_with_a_newline_is_refused(tmp_path, capsys):
    board = load_board("pynq-z2").to_dict()
    board["part"] = "xc7z020clg400-1\nexec rm -rf ~"
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(board))
    code, _, err = _run(capsys, "dse", "digits_cnn", "--board", path, "--out", tmp_path / "d")
    assert code == 1 and "part" in _one_line(err)


# --- 6. and 7. one line, the right words, the right exit status -----------------------------------------
@pytest.mark.parametrize("argv, code_expected, words", [
    (["csim", "{prj}", "--steps", "-5"], 2, "must be an integer"),
    (["dse", "digits_cnn", "--board", "pynq-z2", "--out", "{tmp}/d", "--seed", "-1"], 2, "must be an integer"),
    (["dse", "digits_cnn", "--board", "pynq-z2", "--out", "{tmp}/d", "--dask", "notaurl"], 2, "Dask scheduler"),
    (["perf", "digits_cnn", "--design", "{tmp}"], 1, "is a directory"),
    (["sim", "{tmp}/nothing"], 1, "not a project folder"),
])
def test_messages_name_the_input(tmp_path, capsys, project, argv, code_expected, words):
    argv = [a.format(prj=project, tmp=tmp_path) for a in argv]
    if code_expected == 2:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and words in capsys.readouterr().err
        return
    code, _, err = _run(capsys, *argv)
    assert code == code_expected and words in _one_line(err)


def test_dse_population_too_small_says_so(tmp_path, capsys):
    tiny = load_board("pynq-z2").to_dict()
    tiny["name"], tiny["resources"]["dsp"] = "tiny", 1
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny))
    code, _, err = _run(capsys, "dse", "digits_cnn", "--board", path, "--out", tmp_path / "d", "--pop", "2",
                        "--gens", "1")
    line = _one_line(err)
    assert code == 1 and "--pop 2" in line and "larger --pop" in line


def test_an_unexpected_exception_is_exit_3_with_one_line(monkeypatch, capsys):
    import dtlgen.cli as cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_boards", broken)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), "boards", broken))
    code, _, err = _run(capsys, "boards")
    assert code == 3 and "internal error" in _one_line(err) and "--debug" in err
    code, _, err = _run(capsys, "--debug", "boards")
    assert code == 3 and "Traceback" in err


def _with_func(parser, command, func):
    for action in parser._subparsers._group_actions:
        action.choices[command].set_defaults(func=func)
    return parser


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_while_writing_leaves_nothing_behind(tmp_path, signum, code):
    """vgg16_cifar's project takes seconds to write (a 16 MiB memory image and its test vectors): the
    signal arrives while the staging folder is being filled."""
    design = tmp_path / "design.json"
    design.write_text(json.dumps({**DESIGN, "board": "zcu104", "clock_mhz": 150,
                                  "fe": {**DESIGN["fe"], "tm": 16, "tn": 16, "tr": 8, "tc": 8}}))
    out = tmp_path / "prj"
    for _ in range(3):  # a loaded machine may starve this poller until the writer is done: try again
        # SIGINT as a terminal delivers it: a shell that starts the test run in the background ignores
        # SIGINT for its children, and Python keeps an inherited SIG_IGN (no KeyboardInterrupt at all)
        process = subprocess.Popen([sys.executable, "-m", "dtlgen.cli", "generate", "vgg16_cifar", "--design",
                                    str(design), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.time() + 180
        while time.time() < deadline and process.poll() is None \
                and not [p for p in tmp_path.iterdir() if p.name.startswith(".prj")]:
            time.sleep(0.02)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:
            break
        shutil.rmtree(out)  # finished before the signal: the race was lost, not the property
    assert process.returncode == code, err
    assert "nothing half-written" in _one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["design.json"], "staging folders left behind"


# --- fuzz: mutated project files always end in a DtlgenError or a valid project ----------------------------
def _mutations():
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=True),
                     st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3))
    return st.tuples(st.sampled_from(["design.json", "sim/program.json", "sim/params.json", "sim/rl_layout.json",
                                      "sim/rl_quant.json"]), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4),
                     st.sampled_from(["replace", "delete"]), leaf)


def _mutate(data, path_choices, action, value):
    node = data
    for pick in path_choices[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[pick % len(node)]]
        elif isinstance(node, list) and node:
            node = node[pick % len(node)]
    key = path_choices[-1]
    if isinstance(node, dict) and node:
        key = sorted(node)[key % len(node)]
        if action == "delete":
            del node[key]
        else:
            node[key] = value
    elif isinstance(node, list) and node:
        node[key % len(node)] = value
    return data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations())
def test_mutated_project_files_never_escape_as_another_exception(project, tmp_path_factory, mutation):
    name, path_choices, action, value = mutation
    target = tmp_path_factory.mktemp("fuzz") / "prj"
    shutil.copytree(project, target)
    path = target / name
    path.write_text(json.dumps(_mutate(json.loads(path.read_text()), path_choices, action, value)))
    try:
        data = open_project(target)
        check_sources(data, load_rl_project(data), ("rtl", "sim", "hls"))
    except DtlgenError:
        pass  # the one kind of failure a tampered project may cause
    finally:
        shutil.rmtree(target.parent, ignore_errors=True)


# --- found by a hostile review of the first version -------------------------------------------------------
def test_sim_never_imports_or_writes_through_files_planted_in_its_run_folder(copy, tmp_path):
    marker, victim = tmp_path / "pwned", tmp_path / "victim.txt"
    victim.write_text("precious")
    (copy / "sim" / "run").mkdir()
    (copy / "sim" / "run" / "fe_cocotb_test.py").write_text(f"open('{marker}', 'w').write('x')\n")
    (copy / "sim" / "run" / "sim.log").symlink_to(victim)
    result = subprocess.run([sys.executable, "-m", "dtlgen.cli", "sim", str(copy)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and "dtlgen did not write" in _one_line(result.stderr)
    assert not marker.exists() and victim.read_text() == "precious"


@pytest.mark.parametrize("planted", ["hls/cstdint", "hls/bits/c++config.h"])
def test_csim_compiles_nothing_but_dtlgens_own_sources(copy, planted):
    path = copy / planted
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#error planted header\n")
    data = open_project(copy)
    with pytest.raises(DtlgenError, match="not a file dtlgen writes there"):
        check_sources(data, load_rl_project(data), ("hls",))


def test_forged_testbench_vectors_are_refused(copy, capsys):
    script = copy / "hls" / "tb_data" / "fe_script.txt"
    script.write_text("memory 4294967296\n" + script.read_text())
    code, _, err = _run(capsys, "csim", copy, "--steps", "0")
    assert code == 1 and "fe_script.txt differs" in _one_line(err)


def test_a_report_of_yours_is_not_overwritten_or_adopted(copy, capsys):
    report = copy / "hls" / "csim_report.json"
    report.write_text("my own notes")
    code, _, err = _run(capsys, "csim", copy, "--steps", "0")
    assert code == 1 and "hls/csim_report.json, which dtlgen did not write" in _one_line(err)
    assert report.read_text() == "my own notes"
    assert "hls/csim_report.json" not in json.loads((copy / MANIFEST).read_text())["files"]


def test_bitstream_keeps_files_of_yours_in_its_folders(tmp_path, capsys, monkeypatch):
    design = tmp_path / "d.json"
    design.write_text(json.dumps({**DESIGN, "board": "ulx3s-85f", "clock_mhz": 6.25,
                                  "fe": {**DESIGN["fe"], "tm": 1, "tn": 1, "tr": 2, "tc": 2},
                                  "rl": {**DESIGN["rl"], "tm": 1, "tn": 1}}))
    prj = tmp_path / "prj"
    assert main(["generate", "digits_cnn", "--design", str(design), "--out", str(prj)]) == 0
    (prj / "ecp5" / "build").mkdir()
    (prj / "ecp5" / "build" / "notes.txt").write_text("mine")
    (prj / "ecp5" / "dtl.bit").symlink_to(design)
    code, _, err = _run(capsys, "bitstream", prj)
    assert code == 1 and "dtlgen did not write" in _one_line(err)
    assert (prj / "ecp5" / "build" / "notes.txt").read_text() == "mine"


def test_a_crafted_manifest_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / MANIFEST).write_text("[" * 200_000 + "]" * 200_000)
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", _design(tmp_path), "--out", deep)
    assert code == 1 and "not written by dtlgen" in _one_line(err)


def test_a_regenerated_project_inside_a_demo_folder_keeps_the_demo_replaceable(tmp_path):
    from dtlgen.atomic import atomic_directory, check_destination

    demo = tmp_path / "demo"
    with atomic_directory(demo, "demo") as staging:
        with atomic_directory(staging / "project", "project") as inner:
            (inner / "a.txt").write_text("first")
        (staging / "demo_report.json").write_text("{}")
    with atomic_directory(demo / "project", "project") as inner:
        (inner / "b.txt").write_text("second")
    check_destination(demo, "demo")  # every file in it is still listed, unchanged


@pytest.mark.parametrize("changes, words", [
    ({"rl__foo": 1}, "rl.foo"),
    ({"fe__dsp_packing": 2}, "dsp_packing"),
    ({"extra": 1}, "'extra'"),
    ({"board": "/tmp/custom.yaml"}, "board name"),
])
def test_unknown_design_fields_are_refused(tmp_path, capsys, changes, words):
    code, _, err = _run(capsys, "perf", "digits_cnn", "--design", _design(tmp_path, **changes))
    assert code == 1 and words in _one_line(err)


def test_perf_json_of_a_design_that_does_not_fit_says_why(tmp_path, capsys):
    code, out, err = _run(capsys, "perf", "digits_cnn", "--design", _design(tmp_path, fe__tm=64, fe__tn=64), "--json")
    assert code == 1 and json.loads(out)["feasible"] is False and "does not fit" in _one_line(err)


def test_a_closed_pipe_is_not_an_error_message():
    result = subprocess.run(f"{sys.executable} -m dtlgen.cli import vgg16_cifar --json | head -c 10", shell=True,
                            capture_output=True, text=True, timeout=120)
    assert result.stderr == ""


def test_a_project_with_narrow_rl_values_runs(tmp_path, capsys):
    prj = tmp_path / "prj"
    code, _, err = _run(capsys, "generate", "digits_cnn", "--design", _design(tmp_path, rl__bits=7), "--out", prj)
    assert code == 0, err
    data = open_project(prj)
    load_rl_project(data)


def test_the_dse_treats_rl_descriptor_limits_as_constraints():
    """resnet18_cifar re-training fc1 and fc2 on a 1x1 RL array needs 133,632 weight tiles: more than the
    16-bit fields hold. `generate` refuses such a design, so the DSE must never propose it."""
    from dtlgen.dse.problem import Fixed, Workload, evaluate_model
    from dtlgen.model import load_model

    network = load_model("resnet18_cifar", {"retrain_last": 2})
    board = load_board("zcu104")
    values = {"fe_tm": 8, "fe_tn": 8, "fe_tr": 8, "fe_tc": 8, "fe_w_bits": 8, "fe_a_bits": 8, "fe_lut_32nds": 0,
              "rl_bits": 16}
    rows = [{**values, "rl_tm": 1, "rl_tn": 1}, {**values, "rl_tm": 4, "rl_tn": 4}]
    constraints = evaluate_model(network, board, Workload(), Fixed(), rows)[:, 2:]
    assert constraints[0].max() > 0, "a 1x1 RL array for resnet18's head was accepted"
    assert constraints[1].max() <= 0
