"""Every case of issue 13 ("What was seen") re-run through the `dtlgen` command, as a user types it.

Each row: the case, the command (paths shortened to the scratch folder), the exit status, the line
dtlgen printed on stderr (progress lines left out), and, where the case is about files or code, what
the check after the command found (files kept, marker absent, no staging folder left). The
regression tests of the same cases are `python -m pytest tests/test_hostile_inputs.py`; this table
is what the closing note and the README quote.

Run: python benchmarks/hostile_inputs.py [--only WORD]     (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

from dtlgen.boards import load_board

DESIGN = {"board": "pynq-z2", "clock_mhz": 100, "fe": {"tm": 4, "tn": 4, "tr": 4, "tc": 4, "w_bits": 8, "a_bits": 8},
          "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}


@dataclass
class Case:
    label: str
    argv: list[str]
    setup: Callable[[Path], None] = lambda work: None
    check: Callable[[Path], str] = lambda work: ""  # what the after-check found
    env: dict[str, str] = field(default_factory=dict)
    signal_when: Callable[[Path], bool] | None = None  # send SIGINT/SIGTERM once this holds
    signum: int = signal.SIGINT


def dtlgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "dtlgen.cli", *args]


def run_case(case: Case, work: Path) -> tuple[int, str, str]:
    case.setup(work)
    env = {**os.environ, **case.env}
    process = subprocess.Popen(case.argv, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if case.signal_when is not None:
        deadline = time.time() + 300
        while process.poll() is None and time.time() < deadline and not case.signal_when(work):
            time.sleep(0.02)
        process.send_signal(case.signum)
    _, err = process.communicate(timeout=900)
    lines = [line for line in err.splitlines()
             if line.strip() and not line.startswith(("-> ", "NSGA-II generation"))]
    message = lines[-1] if lines else ""
    if len(lines) > 1:
        message = f"[{len(lines)} lines] " + message
    return process.returncode, message, case.check(work)


# --- scenario helpers -------------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def design(work: Path, name: str = "design.json", **changes) -> str:
    data = json.loads(json.dumps(DESIGN))
    for key, value in changes.items():
        section, _, key2 = key.partition("__")
        if key2:
            data[section][key2] = value
        else:
            data[section] = value
    write(work / name, json.dumps(data))
    return name


def fresh_copy(work: Path, name: str) -> None:
    shutil.rmtree(work / name, ignore_errors=True)
    shutil.copytree(work / "prj", work / name)


def edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def foreign_folder(marker: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        folder = work / "thesis"
        shutil.rmtree(folder, ignore_errors=True)
        for name, text in {marker: "{}", "thesis.tex": "mine", "sub/data.csv": "1,2\n"}.items():
            write(folder / name, text)
    return setup


def files_kept(work: Path) -> str:
    kept = sorted(p.relative_to(work / "thesis").as_posix() for p in (work / "thesis").rglob("*") if p.is_file())
    staging = [p.name for p in work.iterdir() if p.name.startswith(".thesis")]
    return f"kept {', '.join(kept)}" + (f"; LEFT {staging}" if staging else "")


def tampered(name: str, tamper: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        fresh_copy(work, name)
        tamper(work / name)
    return setup


def model_file(work: Path, body: str) -> str:
    write(work / "user_model.py", "import torch\nimport torch.nn as nn\n" + body)
    return "user_model.py:f"


def no_leftovers(prefix: str) -> Callable[[Path], str]:
    return lambda work: ("no staging folder left" if not [p for p in work.iterdir() if p.name.startswith(prefix)]
                         else "LEFT " + ", ".join(p.name for p in work.iterdir() if p.name.startswith(prefix)))


def cases(work: Path) -> list[Case]:
    marker = work / "pwned"
    pynq = load_board("pynq-z2").to_dict()

    def pickle_bomb(prj: Path) -> None:
        class Exploit:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))
        (prj / "sim" / "rl_golden.pkl").write_bytes(pickle.dumps(Exploit()))

    def truncate(prj: Path) -> None:
        arrays = dict(np.load(prj / "sim/expected.npz"))
        arrays["memory"] = arrays["memory"][:len(arrays["memory"]) // 2]
        np.savez(prj / "sim/expected.npz", **arrays)

    def board_file(file: str, **changes) -> Callable[[Path], None]:
        def setup(w: Path) -> None:
            data = json.loads(json.dumps(pynq))
            data.update({k: v for k, v in changes.items() if k != "dsp"})
            if "dsp" in changes:
                data["resources"]["dsp"] = changes["dsp"]
            write(w / file, yaml.safe_dump(data))
        return setup

    def marker_absent(w: Path) -> str:
        return "marker file ABSENT (no code ran)" if not marker.exists() else "MARKER PRESENT"

    def embedded_dsp(w: Path) -> str:
        path = w / "dse-custom" / "design.json"
        return f"design.json board_spec dsp = {json.loads(path.read_text())['board_spec']['resources']['dsp']}" \
            if path.exists() else ""

    def cache_clean(w: Path) -> str:
        left = [p.name for p in (w / "cache" / "csim").glob("*.tmp*")] if (w / "cache" / "csim").exists() else []
        return "no build staging left in the cache" if not left else f"LEFT {left}"

    def gops_vs_peak(w: Path) -> str:
        out = json.loads((w / "perf.json").read_text()) if (w / "perf.json").exists() else None
        if not out:
            return ""
        rows = out["rl"]["descriptors"]
        worst = max(rows, key=lambda r: r["gops"] - r["roofline_gops"] if r["roofline_gops"] else -1)
        return f"max RL row {worst['gops']:.2f} GOPs vs roofline {worst['roofline_gops']:.2f} ({worst['name']})"

    vgg = {"board": "zcu104", "clock_mhz": 150, "fe": {"tm": 16, "tn": 16, "tr": 8, "tc": 8, "w_bits": 8, "a_bits": 8},
           "rl": {"tm": 8, "tn": 8, "bits": 16, "batch": 16}}
    write(work / "vgg.json", json.dumps(vgg))
    staging = lambda prefix: lambda w: bool([p for p in w.iterdir() if p.name.startswith(prefix)])  # noqa: E731
    return [
        # 1. data loss
        Case("1 generate --out over a folder with report.json + foreign files",
             dtlgen("generate", "digits_cnn", "--design", design(work), "--out", "thesis"),
             foreign_folder("report.json"), files_kept),
        Case("1 dse --out over a folder with pareto.json + foreign files",
             dtlgen("dse", "digits_cnn", "--board", "pynq-z2", "--out", "thesis"), foreign_folder("pareto.json"),
             files_kept),
        Case("1 demo --out over a folder with demo_report.json + foreign files",
             dtlgen("demo", "--out", "thesis"), foreign_folder("demo_report.json"), files_kept),
        # 2. code execution
        Case("2 csim of a project holding a crafted rl_golden.pkl", dtlgen("csim", "p-pickle", "--steps", "1"),
             tampered("p-pickle", pickle_bomb), marker_absent),
        Case("2 sim of a project whose sim/test_fe_engine.py runs a command", dtlgen("sim", "p-test"),
             tampered("p-test", lambda p: write(p / "sim/test_fe_engine.py", f"import os\nos.system('touch {marker}')\n")),
             marker_absent),
        # 3. crashes from a tampered project
        Case("3 csim, desc_addr=2^31 in program.json", dtlgen("csim", "p-addr"),
             tampered("p-addr", lambda p: edit_json(p / "sim/program.json", lambda d: d.update(desc_addr=2 ** 31)))),
        Case("3 sim, desc_addr=2^31 in program.json", dtlgen("sim", "p-addr")),
        Case("3 csim, 50 extra ops", dtlgen("csim", "p-ops"), tampered("p-ops", lambda p: edit_json(
            p / "sim/program.json", lambda d: d["ops"].extend([d["ops"][-1]] * 50)))),
        Case("3 csim, truncated memory array", dtlgen("csim", "p-trunc"), tampered("p-trunc", truncate)),
        # 4. impossible designs
        Case("4 generate fe.tm=10^12", dtlgen("generate", "digits_cnn", "--design", design(work, "d1.json", fe__tm=10 ** 12),
                                              "--out", "o1")),
        Case("4 generate fe.tm=10000", dtlgen("generate", "digits_cnn", "--design", design(work, "d2.json", fe__tm=10000),
                                              "--out", "o2")),
        Case("4 generate clock_mhz=1e-300", dtlgen("generate", "digits_cnn", "--design",
                                                   design(work, "d3.json", clock_mhz=1e-300), "--out", "o3")),
        Case("4 generate a digits_cnn DSE design for vgg16_cifar",
             dtlgen("generate", "vgg16_cifar", "--design", "dse-digits/design.json", "--out", "o4"),
             lambda w: subprocess.run(dtlgen("dse", "digits_cnn", "--board", "pynq-z2", "--out", "dse-digits", "--pop",
                                             "12", "--gens", "3", "--force"), cwd=w, capture_output=True)),
        Case("4 generate --retrain-last 1 against the design's split",
             dtlgen("generate", "digits_cnn", "--design", "dse-digits/design.json", "--out", "o5", "--retrain-last", "1")),
        Case("4 resnet18_cifar on zcu104, --retrain-last 1: dse then generate",
             dtlgen("generate", "resnet18_cifar", "--design", "dse-r18/design.json", "--out", "o6", "--force"),
             lambda w: subprocess.run(dtlgen("dse", "resnet18_cifar", "--board", "zcu104", "--retrain-last", "1", "--out",
                                             "dse-r18", "--pop", "20", "--gens", "5", "--force"), cwd=w,
                                      capture_output=True),
             lambda w: "project written" if (w / "o6" / "design.json").exists() else "no project"),
        # 5. custom boards
        Case("5 dse --board my.yaml (named pynq-z2, 400 DSP)",
             dtlgen("dse", "digits_cnn", "--board", "my.yaml", "--out", "dse-custom", "--pop", "12", "--gens", "3",
                    "--force"), board_file("my.yaml", dsp=400), embedded_dsp),
        Case("5 ... then generate with no --board", dtlgen("generate", "digits_cnn", "--design", "dse-custom/design.json",
                                                           "--out", "p-custom", "--force"),
             check=lambda w: "its design.json board_spec dsp = " + str(json.loads((w / "p-custom/design.json").read_text())
                                                              ["board_spec"]["resources"]["dsp"])),
        Case("5 ... then csim", dtlgen("csim", "p-custom", "--steps", "1")),
        Case("5 perf --board my.yaml", dtlgen("perf", "digits_cnn", "--design", "dse-custom/design.json", "--board",
                                              "my.yaml")),
        Case("5 part with a newline", dtlgen("dse", "digits_cnn", "--board", "evil.yaml", "--out", "o7"),
             board_file("evil.yaml", part="xc7z020clg400-1\nexec rm -rf ~")),
        Case("5 clock_mhz: .inf", dtlgen("dse", "digits_cnn", "--board", "inf.yaml", "--out", "o8"),
             lambda w: write(w / "inf.yaml", yaml.safe_dump(pynq).replace("clock_mhz: 100", "clock_mhz: .inf"))),
        # 6. tracebacks where one line is promised
        Case("6 unwritable --out (checked before the DSE)", dtlgen("dse", "digits_cnn", "--board", "pynq-z2", "--out",
                                                                   "/proc/dtlgen-out")),
        Case("6 csim where hls/csim_report.json cannot be written", dtlgen("csim", "p-ro", "--steps", "1"),
             tampered("p-ro", lambda p: (p / "hls/csim_report.json").mkdir())),
        Case("6 model input shape not matching the model", dtlgen("import", model_file(
            work, "def f():\n    return nn.Sequential(nn.Conv2d(1, 4, 3)), (3, 32, 32)\n"))),
        Case("6 (True, 32, 32) as a shape", dtlgen("import", "shape.py:f"),
             lambda w: write(w / "shape.py", "import torch.nn as nn\ndef f():\n    return nn.Sequential(nn.Conv2d(1, 4, 3))"
                                           ", (True, 32, 32)\n")),
        Case("6 NaN weights", dtlgen("import", "nan.py:f"),
             lambda w: write(w / "nan.py", "import torch, torch.nn as nn\ndef f():\n    m = nn.Sequential(nn.Flatten(), "
                                         "nn.Linear(16, 4))\n    m[1].weight.data[0, 0] = float('nan')\n    return m, (16,)\n")),
        Case("6 per_layer as a list", dtlgen("perf", "digits_cnn", "--design", design(work, "d9.json", per_layer=[]))),
        Case("6 --seed -1", dtlgen("dse", "digits_cnn", "--board", "pynq-z2", "--out", "o10", "--seed", "-1")),
        Case("6 --dask notaurl", dtlgen("dse", "digits_cnn", "--board", "pynq-z2", "--out", "o11", "--dask", "notaurl")),
        Case("6 DTLGEN_CACHE is a file", dtlgen("csim", "prj", "--steps", "1"), lambda w: write(w / "afile", "x"),
             env={"DTLGEN_CACHE": str(work / "afile")}),
        Case("6 CXX=true", dtlgen("csim", "prj", "--steps", "1"), env={"CXX": "true", "DTLGEN_CACHE": str(work / "c2")}),
        Case("6 missing sim/program.json", dtlgen("csim", "p-miss"),
             tampered("p-miss", lambda p: (p / "sim/program.json").unlink())),
        Case("6 missing sim/rl_train.npz", dtlgen("sim", "p-miss2", "--retrain"),
             tampered("p-miss2", lambda p: (p / "sim/rl_train.npz").unlink())),
        Case("6 garbage expected.npz", dtlgen("csim", "p-npz"),
             tampered("p-npz", lambda p: (p / "sim/expected.npz").write_bytes(b"PK\x03\x04garbage"))),
        Case("6 a deleted .sv in bitstream (ECP5 project)", dtlgen("bitstream", "p-ecp5"),
             lambda w: (subprocess.run(dtlgen("generate", "digits_cnn", "--design", design(
                 w, "d-ecp5.json", board="ulx3s-85f", clock_mhz=6.25, fe={**DESIGN["fe"], "tm": 1, "tn": 1, "tr": 2, "tc": 2},
                 rl={**DESIGN["rl"], "tm": 1, "tn": 1}), "--out", "p-ecp5", "--force"), cwd=w, capture_output=True),
                        (w / "p-ecp5/ecp5/fe_engine.sv").unlink())),
        Case("6 a factory calling SystemExit(3)", dtlgen("import", "exit3.py:f"),
             lambda w: write(w / "exit3.py", "def f():\n    raise SystemExit(3)\n")),
        Case("6 Ctrl-C during generate vgg16_cifar's write phase",
             dtlgen("generate", "vgg16_cifar", "--design", "vgg.json", "--out", "p-int"), check=no_leftovers(".p-int"),
             signal_when=staging(".p-int")),
        # 7. wrong or misleading messages
        Case("7 dse --pop 1", dtlgen("dse", "digits_cnn", "--board", "tiny.yaml", "--out", "o12", "--pop", "1",
                                     "--gens", "1"), board_file("tiny.yaml", name="tiny", dsp=1)),
        Case("7 CXX=/nonexistent", dtlgen("csim", "prj", "--steps", "1"),
             env={"CXX": "/nonexistent", "DTLGEN_CACHE": str(work / "c3")}),
        Case("7 csim --steps -5", dtlgen("csim", "prj", "--steps", "-5")),
        Case("7 rl.acc_bits=8", dtlgen("generate", "digits_cnn", "--design", design(work, "d13.json", rl__acc_bits=8),
                                       "--out", "o13")),
        Case("7 --design a directory", dtlgen("perf", "digits_cnn", "--design", ".")),
        Case("7 torch.cat", dtlgen("import", "cat.py:f"), lambda w: write(w / "cat.py", (
            "import torch, torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.a = nn.Conv2d(1, 2, 3, padding=1)\n    def forward(self, x):\n"
            "        return torch.cat([self.a(x), self.a(x)], 1)\ndef f():\n    return M(), (1, 8, 8)\n"))),
        Case("7 max-pool with ceil_mode", dtlgen("import", "ceil.py:f"), lambda w: write(w / "ceil.py", (
            "import torch.nn as nn\ndef f():\n    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True))"
            ", (1, 7, 7)\n"))),
        Case("7 GOPs above peak: perf of RL 4x5 (peak 4.00 GOPs at 100 MHz)",
             ["sh", "-c", " ".join(dtlgen("perf", "digits_cnn", "--design", design(work, "d14.json", rl={**DESIGN["rl"],
                                                                                                      "tm": 4, "tn": 5}),
                                          "--json")) + " > perf.json"], check=gops_vs_peak),
        # 8. left-overs
        Case("8 SIGTERM during generate vgg16_cifar's write phase",
             dtlgen("generate", "vgg16_cifar", "--design", "vgg.json", "--out", "p-term"), check=no_leftovers(".p-term"),
             signal_when=staging(".p-term"), signum=signal.SIGTERM),
        Case("8 Ctrl-C during the g++ build", dtlgen("csim", "prj", "--steps", "1"),
             lambda w: shutil.rmtree(w / "cache", ignore_errors=True), cache_clean, env={"DTLGEN_CACHE": str(work / "cache")},
             signal_when=lambda w: bool(list((w / "cache" / "csim").glob("*.tmp*"))) if (w / "cache" / "csim").exists()
             else False),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the cases whose label holds this word")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 250)
    with tempfile.TemporaryDirectory(prefix="dtlgen-hostile-") as scratch:
        work = Path(scratch)
        subprocess.run(dtlgen("generate", "digits_cnn", "--design", design(work), "--out", "prj"), cwd=work, check=True,
                       capture_output=True)
        table = Table(title="Issue 13's cases through the dtlgen command", title_justify="left", show_lines=False)
        for column in ("case", "command", "exit", "stderr (the message line)", "after"):
            table.add_column(column, overflow="fold")
        for case in cases(work):
            if args.only and args.only not in case.label:
                continue
            code, message, after = run_case(case, work)
            command = ("dtlgen " + " ".join(case.argv[3:]) if case.argv[0] == sys.executable else case.argv[-1])
            command = command.replace(f"{sys.executable} -m dtlgen.cli", "dtlgen").replace(str(work) + "/", "")
            env = " ".join(f"{k}={v.replace(str(work) + '/', '')}" for k, v in case.env.items())
            table.add_row(case.label, (env + " " if env else "") + command, str(code),
                          message.replace(str(work) + "/", "").replace(scratch, "."), after)
        console.print(table)
    console.print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
                  "Every command ran as a subprocess in a scratch folder (paths shown relative to it).",
                  highlight=False)


if __name__ == "__main__":
    main()
