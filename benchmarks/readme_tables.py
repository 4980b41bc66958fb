"""The README's generated tables: what today's code prints, written into README.md or checked against it.

A table the README quotes from a deterministic command lives between two markers,
`<!-- table: NAME -->` and `<!-- /table -->`; this script renders each from the library (the
same calls the commands make) and either rewrites the block (`--write`) or exits 1 naming the
tables that differ (`--check`, what tests/test_readme_tables.py runs for the fast ones). The
tables of RTL simulations and of long benchmarks are not here: their sections name the command
that printed them and the day it ran.

Tables:
- models: every zoo model's layers, MACs and parameters per sample, and its default split
  (`dtlgen import`; seconds).
- knees: the DSE's knee designs of vgg16_cifar and resnet18_cifar on pynq-z2 and zcu104 under the
  default search (`dtlgen dse M --board B` then `dtlgen perf`: pop 100 x 100, seed 1; 1 to 2 min
  each on 2 cores).

Run: python benchmarks/readme_tables.py [--write | --check] [--tables models knees] [--readme README.md]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
KNEES = (("vgg16_cifar", "pynq-z2"), ("vgg16_cifar", "zcu104"), ("resnet18_cifar", "pynq-z2"),
         ("resnet18_cifar", "zcu104"))


def models_table() -> str:
    from dtlgen.model import load_model
    from dtlgen.model.zoo import zoo_names

    lines = ["| model (`dtlgen import`) | input | layers | MACs / sample | params | retrainable (default split) |",
             "|---|---|---|---|---|---|"]
    for name in zoo_names():
        network = load_model(name)
        retrain = network.retrainable_layers
        lines.append(f"| {name} | {'×'.join(map(str, network.input_shape))} | {len(network.layers)} | "
                     f"{network.macs:,} | {network.params:,} | {', '.join(l.name for l in retrain if l.has_weights)}: "
                     f"{sum(l.params for l in retrain):,} params |")
    return "\n".join(lines)


def knees_table() -> str:
    import dtlgen
    from dtlgen.perf import predict

    lines = ["| model / board (clock) | FE array, tiles, bits | FE cycles / image | FE GOPs | RL array, bits | "
             "RL step cycles (batch 16) | RL GOPs | DSP / BRAM18 / LUT (est.) |", "|---|---|---|---|---|---|---|---|"]
    for model, board_name in KNEES:
        network = dtlgen.load_model(model)
        design = dtlgen.explore(network, board_name, pop=100, gens=100, seed=1)
        board = design.board_record()
        p = predict(network, design, board)
        fe, rl, used = design.fe, design.rl, p.resources
        lines.append(f"| {model} / {board_name} ({design.clock_mhz:g} MHz) | {fe.tm}×{fe.tn}, {fe.tr}×{fe.tc}, "
                     f"w{fe.w_bits}/a{fe.a_bits}, {fe.lut_mults} LUT mults{', read FIFO' if fe.prefetch else ''} | "
                     f"{p.fe_cycles_per_image:,.0f} | "
                     f"{p.fe_gops:.2f} | {rl.tm}×{rl.tn}, {rl.bits}-bit | {p.rl_step_cycles:,} | {p.rl_gops:.2f} | "
                     f"{used.dsp} / {used.bram18} / {used.lut:,} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {"models": models_table, "knees": knees_table}


def block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- table: {name} -->\n)(.*?)(\n<!-- /table -->)", re.S)


def stale_tables(text: str, names: list[str]) -> tuple[str, list[str]]:
    """The README text with each named table rendered anew, and the names whose block changed."""
    stale = []
    for name in names:
        pattern = block(name)
        match = pattern.search(text)
        if match is None:
            raise SystemExit(f"README has no block '<!-- table: {name} -->' ... '<!-- /table -->'")
        table = TABLES[name]()
        if match.group(2) != table:
            stale.append(name)
            text = text[:match.start(2)] + table + text[match.end(2):]
    return text, stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in the README")
    mode.add_argument("--check", action="store_true", help="exit 1 if a block differs from what the code prints")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    text = args.readme.read_text()
    new, stale = stale_tables(text, args.tables)
    if args.write:
        if stale:
            args.readme.write_text(new)
        print(f"rewrote {', '.join(stale) or 'nothing'} in {args.readme}")
        return 0
    if args.check:
        if stale:
            print(f"{args.readme}: tables {', '.join(stale)} differ from what the code prints; run "
                  f"python benchmarks/readme_tables.py --write --tables {' '.join(stale)}", file=sys.stderr)
            return 1
        print(f"{args.readme}: tables {', '.join(args.tables)} are what the code prints")
        return 0
    for name in args.tables:
        print(TABLES[name]() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
