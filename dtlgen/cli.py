"""The `dtlgen` command line: argument parsing, tables and exit codes around library calls.

Exit status (docs/cli.md, "Errors and exit codes"): 0 success; 1 a user error or an anticipated
environment problem (one line on stderr naming the input and the fix); 2 a usage error (argparse);
3 an internal error (a bug: one line asking for a report, the traceback with --debug or
DTLGEN_DEBUG=1); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), after the command's cleanup.
Every command that prints a table also takes `--json` and then prints only JSON on stdout;
progress goes to stderr so stdout stays parseable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from dtlgen.progress import Progress, RichProgress, using
from rich.table import Table

from dtlgen.errors import DesignError, DtlgenError, DtlgenWarning
from dtlgen.host.rl_plan import MAX_STEPS  # re-training steps a command may ask for
from dtlgen.isa.seeded import KINDS as SEEDED_KINDS

# Pipes and CI logs get wide tables instead of rich's 80-column default; terminals keep their width.
_out = Console(width=None if sys.stdout.isatty() else 200)
_err = Console(stderr=True, soft_wrap=True)


def _print_json(data: Any) -> None:
    from dtlgen.atomic import _finite

    print(json.dumps(_finite(data), indent=2, sort_keys=True))


def _show(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str | None = None) -> None:
    """Print a table, then its caption as plain text (never squeezed into the table's width)."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 or column in ("name", "op", "shape", "layer", "engine", "family",
                                                              "part", "package", "toolchain", "board") else "right")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    _out.print(table)
    if caption:
        _out.print(caption, soft_wrap=True, highlight=False)


def _progress(args: argparse.Namespace) -> Progress:
    """Progress lines, spinners and bars on stderr (dtlgen.progress), silent with --json so that stdout
    stays parseable."""
    if getattr(args, "progress", None) is None:  # one per command: main() installs it as current()
        args.progress = Progress() if getattr(args, "json", False) else RichProgress(_err)
    return args.progress


def _load_network(args: argparse.Namespace, split: Any) -> Any:
    """MODEL with --weights, the split and --prune, and with --seeded its frozen convs seeded (trained on --source);
    with --adapters, residual adapters after its blocks (dtlgen.model.adapters)."""
    network = _unpruned_network(args, split)
    shares = _prune_shares(args)
    adapters = getattr(args, "adapters", None)
    if adapters is not None:
        if shares is not None or getattr(args, "seeded", False) or getattr(args, "seeded_layers", None):
            raise DesignError("--adapters is not combined with --prune or --seeded yet: give --adapters alone")
        from dtlgen.model.adapters import add_adapters

        return add_adapters(network, adapters)
    if shares is None:
        return network
    from dtlgen.model.prune import prune

    return prune(network, shares)


def _prune_shares(args: argparse.Namespace) -> dict[str, float] | None:
    """Every --prune option's shares in one dict (a part given twice is refused), or None without any."""
    if not args.prune:
        return None
    merged: dict[str, float] = {}
    for shares in args.prune:
        twice = set(shares) & set(merged)
        if twice:
            raise DesignError(f"--prune gives {sorted(twice)[0]} twice; give each part once, e.g. --prune fe=0.7,rl=0.8")
        merged.update(shares)
    return merged


def _prune_option(text: str) -> dict[str, float]:
    """--prune rl=0.8 or fe=0.7,rl=0.8: the share of each part's weights removed (rl_neurons=S: of its neurons)."""
    from dtlgen.model.prune import check_prune

    shares: dict[str, Any] = {}
    for item in text.split(","):
        part, _, value = item.partition("=")
        if part.strip() in shares:
            raise argparse.ArgumentTypeError(f"{text!r}: {part.strip()} given twice")
        try:
            if "_" in value:  # (float() reads 0_5 as 5.0: a digit separator, not a decimal point)
                raise ValueError(value)
            shares[part.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: give PART=SHARE pairs, e.g. fe=0.7,rl=0.8") from None
    try:
        return check_prune(shares)
    except DtlgenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unpruned_network(args: argparse.Namespace, split: Any) -> Any:
    from dtlgen.model import load_model

    options = {"--weight-seed": args.weight_seed, "--seeded-kind": args.seeded_kind, "--source": args.source,
               "--source-epochs": args.source_epochs}
    if not args.seeded and args.seeded_layers is None:
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise DesignError(f"{given[0]} is for a seeded model: add --seeded")
        return load_model(args.model, split, args.weights)
    if args.source_epochs is not None and args.source is None:
        raise DesignError("--source-epochs trains on --source: give --source DATA.npz")
    from dtlgen import api

    layers = "auto"
    if args.seeded_layers is not None:
        layers = [name.strip() for name in args.seeded_layers.split(",")]
        if not all(layers):
            raise DesignError(f"--seeded-layers {args.seeded_layers!r}: an empty layer name; give comma-separated "
                              "frozen conv names, e.g. --seeded-layers conv1,conv2")
    where = {"retrain_last": split["retrain_last"]} if isinstance(split, dict) else {"split": split}
    # the source set checked against the model's input shape and classes, every message naming the file
    source = _data(args.source, "--source", labels=True, network=load_model(args.model, split, args.weights)) \
        if args.source else None
    return api.load_model(args.model, **where, weights=args.weights, seeded=layers, source=source,
                          weight_seed=1 if args.weight_seed is None else args.weight_seed,
                          seeded_kind=args.seeded_kind or "sign",
                          epochs=40 if args.source_epochs is None else args.source_epochs)


def _data(path: str, option: str, labels: bool, network: Any = None) -> tuple[Any, Any]:
    """The arrays x (and y) of a --calib / --data NPZ file, checked against `network` when given
    (its input shape, its classes), every message naming the file."""
    from dtlgen.model.data import load_data, output_classes

    if network is None:
        return load_data(path, labels, option)
    return load_data(path, labels, option, tuple(network.input_shape), output_classes(network) if labels else None)


def _require_retraining(args: argparse.Namespace, what: str, no_steps: str, option: str) -> None:
    """An option of csim / sim that only re-training uses: sim needs --retrain, and neither runs --steps 0."""
    if getattr(args, "retrain", True) is False:
        raise DesignError(f"{what} is for re-training: add --retrain")
    if args.steps == 0:
        raise DesignError(f"{no_steps}: give --steps N (N >= 1) or drop {option}")


def _strategy_checks(args: argparse.Namespace) -> None:
    """--replay / --regrow of csim / sim, checked before any work (the project's own checks follow)."""
    if args.replay or args.regrow:
        option = "--replay" if args.replay else "--regrow"
        _require_retraining(args, option, f"{option} shapes re-training steps, and --steps 0 runs none", option)
    if args.replay and not args.data:
        raise DesignError("--replay mixes the project's cached samples into a new re-training set: give it with --data")
    if args.replay and args.teacher:
        raise DesignError("--replay mixes the project's cached samples into the set, and --teacher's logits cover "
                          "--data only: give --replay or --teacher, not both")


def _training_set(args: argparse.Namespace) -> Any:
    """--data of csim/sim: the set's FE features (the project's FE engine, C-simulated) and labels.
    The options are checked before the C-simulation computes anything."""
    if not args.data:
        return None
    from dtlgen import api
    from dtlgen.model.data import array_names

    _require_retraining(args, "a re-training set (--data)", f"--data {args.data} is a re-training set, and --steps 0 "
                        "re-trains nothing", "--data")
    project = api.open_project(args.project)
    if project.rl is None:
        raise DesignError(f"project '{project.path}' has no RL engine (nothing re-trains), so --data has nothing to "
                          "re-train; generate the project with --retrain-last K or --split NAME|INDEX")
    return project.training_set(_data(args.data, "--data", labels=True), names=array_names("--data", args.data))


def _teacher(args: argparse.Namespace) -> Any:
    """--teacher of csim / sim: (the file's `logits`, the distillation weights), or None; checked before any work."""
    from dtlgen.quant.fixed import Distillation

    if args.teacher is None:
        if args.kd_alpha is not None or args.kd_temperature is not None:
            raise DesignError("--kd-alpha / --kd-temperature weight a teacher's soft targets: add --teacher TEACHER.npz")
        return None
    _require_retraining(args, "a teacher (--teacher)", f"--teacher {args.teacher} distils re-training steps, and "
                        "--steps 0 runs none", "--teacher")
    from dtlgen.model.data import read_arrays

    arrays = read_arrays(args.teacher, "--teacher", "write it with numpy.savez(PATH, logits=...): the teacher's float "
                         "logits, one row per sample of the re-training set")
    if "logits" not in arrays:
        raise DesignError(f"--teacher {args.teacher} holds no array 'logits' (it has: "
                          f"{', '.join(sorted(arrays))[:200] or 'none'}); write it with numpy.savez(PATH, logits=...)")
    try:
        kd = Distillation.from_values(0.5 if args.kd_alpha is None else args.kd_alpha,
                                      2 if args.kd_temperature is None else args.kd_temperature)
    except ValueError as error:
        raise DesignError(f"--kd-alpha / --kd-temperature: {error}") from None
    return arrays["logits"], kd


def _parse_split(args: argparse.Namespace) -> Any:
    if args.retrain_last is not None:
        return {"retrain_last": args.retrain_last}
    if args.split is not None:
        return int(args.split) if args.split.lstrip("-").isdigit() else args.split
    return None


# --- commands ----------------------------------------------------------------------------------
def cmd_cache(args: argparse.Namespace) -> int:
    from dtlgen.cache import cache_info, cache_limit_bytes, cache_root, clear

    if args.action == "clear":
        count, freed = clear()
        if args.json:
            _print_json({"removed_entries": count, "freed_bytes": freed, "root": str(cache_root())})
        else:
            _out.print(f"Removed {count} cached builds ({freed / 1e6:,.1f} MB) from {cache_root()}; the next "
                       "simulation or C-simulation builds again (minutes).", highlight=False)
        return 0
    rows = cache_info()
    if args.json:
        _print_json({"root": str(cache_root()), "limit_bytes": cache_limit_bytes(), "kinds": rows})
        return 0
    _show(f"dtlgen's build cache: {cache_root()}", ["kind", "folder", "builds", "MB"],
          [[r["kind"], r["folder"], r["entries"], f"{r['bytes'] / 1e6:,.1f}"] for r in rows],
          f"Each kind is swept to DTLGEN_CACHE_GB ({cache_limit_bytes() / 1e9:g} GB) after every new build, least "
          "recently used first; DTLGEN_CACHE moves the cache; 'dtlgen cache clear' removes dtlgen's builds "
          "(always safe but while one runs; nothing else in the folder is touched).")
    return 0


def cmd_boards(args: argparse.Namespace) -> int:
    from dtlgen.boards import boards_table_rows

    rows = boards_table_rows()
    if args.json:
        _print_json(rows)
        return 0
    columns = list(rows[0].keys())
    _show("Boards (resources from vendor data sheets; see each YAML file)", columns,
                      [[row[c] for c in columns] for row in rows])
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from dtlgen.model.ops import op_of

    network = _load_network(args, _parse_split(args))
    if args.json:
        _print_json(network.to_dict())
        return 0
    rows = []
    for i, layer in enumerate(network.layers):
        kernel = f"{layer.kernel}/{layer.stride}/{layer.padding}" if op_of(layer).windowed else ""
        if layer.depthwise:
            kernel += " dw"
        rows.append([i, layer.name, layer.op + (f"+{layer.activation}" if layer.activation else "")
                     + (f", seeded {layer.seed['kind']}" if layer.seed is not None else ""),
                     layer.describe_shape(), kernel, f"{layer.macs:,}", f"{layer.params:,}",
                     "FE (frozen)" if layer.frozen else "RL (retrain)"])
    frozen, retrain = network.frozen_layers, network.retrainable_layers
    caption = (f"{len(network.layers)} layers, {network.macs:,} MACs, {network.params:,} params per sample; "
               f"frozen {sum(l.macs for l in frozen):,} MACs / {sum(l.params for l in frozen):,} params, "
               f"retrainable {sum(l.macs for l in retrain):,} MACs / {sum(l.params for l in retrain):,} params")
    _show(f"{network.name}: input {'x'.join(map(str, network.input_shape))}",
                      ["#", "name", "op", "shape", "K/S/P", "MACs", "params", "engine"], rows, caption)
    return 0


def _prediction_rows(predictions) -> list[list[str]]:
    return [[p.name, p.op, f"{p.macs:,}", f"{p.cycles:,}", f"{p.gops:.2f}", f"{p.roofline_gops:.2f}", p.bound,
             f"{100 * p.utilisation:.1f} %"] for p in predictions]


def _design_inputs(args: argparse.Namespace):
    """(design, board, network) of a command that takes MODEL --design [--board] [--split ...], checked
    against each other: the board the design embeds, the split it was made for, the model it was made for."""
    from dtlgen.errors import DesignError
    from dtlgen.perf import load_design
    from dtlgen.perf.validate import check_design_matches

    source = f"design file '{args.design}'"
    design = load_design(args.design)
    board = design.board_record(args.board, source)
    split = _parse_split(args)
    if split is not None and design.split is not None:
        raise DesignError(f"--split/--retrain-last conflicts with the split '{design.split}' that {args.design} "
                          "was designed for; drop the option or edit the design's split")
    network = _load_network(args, design.split if design.split is not None else split)
    check_design_matches(network, design, source)
    return design, board, network


def cmd_perf(args: argparse.Namespace) -> int:
    from dtlgen.perf import predict
    from dtlgen.perf.fe import require_ddr_timing
    from dtlgen.perf.validate import design_problems, structural_problems

    design, board, network = _design_inputs(args)
    problems = structural_problems(network, design, board)
    if problems:
        raise DesignError(f"{args.design} cannot be built for {network.name}: {'; '.join(problems)}")
    timing = require_ddr_timing(board) if args.ddr else None
    prediction = predict(network, design, board, timing)
    problems = design_problems(network, design, board, prediction)
    memory = ("the DDR-like memory of the board file's DRAM timing (the closed form: an estimate); the RL engine "
              "on the ideal memory" if args.ddr else "the ideal memory")
    if args.json:
        _print_json({**prediction.to_dict(), "memory": memory})
        if problems:
            raise DesignError(f"{args.design} does not fit {board.name}: {'; '.join(problems)}")
        return 0
    fe = design.fe
    rows = _prediction_rows(prediction.fe_layers)
    total = "total FE" + (f" (a batch of {fe.batch} images)" if fe.batch > 1 else "")
    rows.append([total, "", f"{sum(p.macs for p in prediction.fe_layers):,}", f"{prediction.fe_cycles:,}",
                 f"{prediction.fe_gops:.2f}", "", "", ""])
    columns = ["layer", "op", "MACs", "cycles", "GOPs", "roofline GOPs", "bound", "array use"]
    _show(f"FE engine: {network.name} on {board.name}, tm={fe.tm} tn={fe.tn} tr={fe.tr} tc={fe.tc}, "
          f"w{fe.w_bits}/a{fe.a_bits}, {design.clock_mhz:g} MHz"
          + (f", batch {fe.batch} (cycles and MACs per batch)" if fe.batch > 1 else ""), columns, rows,
          f"Design clock {design.clock_mhz:g} MHz: {board.clock_basis}. Memory: {memory}.")
    rl = design.rl
    rows = _prediction_rows(prediction.rl_descriptors)
    rows.append(["training step", "", f"{sum(p.macs for p in prediction.rl_descriptors):,}",
                 f"{prediction.rl_step_cycles:,}", f"{prediction.rl_gops:.2f}", "", "", ""])
    _show(f"RL engine: one training step, batch {rl.batch}, tm={rl.tm} tn={rl.tn}, {rl.bits}-bit", columns, rows,
          "A step in a run of steps: its features loaded in the background of the previous step's last UPDATE "
          "(LOAD beside the last UPDATE: the next step's); a run's first step adds a foreground LOAD.")
    used, util = prediction.resources, prediction.resources.utilisation(board)
    res_rows = [[name, getattr(prediction.fe_resources, name), getattr(prediction.rl_resources, name),
                 getattr(used, name), getattr(board.resources, name), f"{100 * util[name]:.1f} %"]
                for name in ("dsp", "bram18", "lut", "ff")]
    _show(f"Resources on {board.name}", ["resource", "FE", "RL", "total", "board", "use"], res_rows,
          "Source: analytical model (dtlgen.perf); DSP and BRAM from the array and buffer sizes, LUT/FF "
          "are estimates from per-unit coefficients. "
          + ("Feasible." if prediction.feasible else "INFEASIBLE: " + "; ".join(prediction.violations)))
    if problems:
        raise DesignError(f"{args.design} does not fit {board.name}: {'; '.join(problems)}; choose smaller arrays or "
                          "re-run 'dtlgen dse' for this board")
    return 0


def cmd_dse(args: argparse.Namespace) -> int:
    from dtlgen import api
    from dtlgen.atomic import check_destination
    from dtlgen.boards import load_board
    from dtlgen.dse import OBJECTIVES
    from dtlgen.dse.run import KIND

    check_destination(Path(args.out), KIND, args.force)  # before minutes of search, not after
    board = load_board(args.board)
    if args.ddr:  # before the model's import and the progress bar (explore checks it too)
        from dtlgen.perf.fe import require_ddr_timing

        require_ddr_timing(board)
    network = _load_network(args, _parse_split(args))
    calib = _data(args.calib, "--calib", labels=False, network=network)[0] if args.calib else None
    with _progress(args).task("NSGA-II generations", total=args.gens) as bar:
        result = api.explore(network, args.board, pop=args.pop, gens=args.gens, seed=args.seed, calibration=calib,
                             prefer=args.prefer, out=Path(args.out), force=args.force, workers=args.workers,
                             dask=args.dask, fe_batch=args.fe_batch, ddr=args.ddr, calibration_file=args.calib,
                             max_latency_ms=args.max_latency_ms, max_param_bytes=args.max_param_bytes,
                             prefetch=args.prefetch, on_generation=bar.update)
    result_front = list(result.pareto)
    if args.json:
        _print_json({"design": result.to_dict(), "front": result_front, "chosen": result.chosen,
                     "evaluations": result.evaluations, "seconds": result.seconds})
        return 0
    front = result_front
    shown = list(range(len(front))) if args.all else _front_summary(front, result.chosen)
    rows = []
    for i in shown:
        p, v = front[i], front[i]["variables"]
        fifo = ", FIFO" if p["fe"].get("prefetch") else ""  # the read FIFO of prefetched requests
        rows.append([_front_role(front, i, result.chosen, args.prefer), f"{v['fe_tm']}x{v['fe_tn']} {v['fe_tr']}x{v['fe_tc']}{fifo}",
                     f"w{v['fe_w_bits']}/a{v['fe_a_bits']}", p["fe"]["lut_mults"], f"{v['rl_tm']}x{v['rl_tn']}",
                     v["rl_bits"], f"{p['info_loss']:.4f}", f"{p['time_s']:.3f}", f"{100 * p['utilisation']:.1f} %",
                     f"{p['fe_gops']:.2f}", f"{p['rl_gops']:.2f}", f"{p['latency_ms']:.3f}", f"{p['param_bytes']:,}",
                     p["dsp"], p["bram18"], p["lut"]])
    memory = "; FE cycles on the DDR-like memory of the board file's DRAM timing" if args.ddr else ""
    which = "" if args.all else f"; the chosen design and each objective's best of the {len(front)}, all with --all"
    _show(f"Pareto front: {network.name} on {board.name} ({len(front)} points, {result.evaluations} "
          f"evaluations, {result.seconds:.1f} s{which})",
          ["", "FE tm x tn, tr x tc", "FE bits", "LUT mults", "RL tm x tn", "RL bits", "logit KL", "time (s)",
           "utilisation", "FE GOPs", "RL GOPs", "latency (ms)", "param bytes", "DSP", "BRAM18", "LUT"], rows,
          f"* = chosen ({args.prefer}); FIFO: the FE's read FIFO of prefetched requests (--prefetch); objectives "
          f"{', '.join(OBJECTIVES)} minimised. Source: analytical model "
          f"(dtlgen.perf{memory}) at {board.clock_mhz:g} MHz (the clock is {board.clock_basis}) and golden-model logit KL. Written to {Path(args.out).resolve()}: "
          "pareto.json, pareto.csv (the whole front), pareto.png, design.json (the chosen design)")
    return 0


_BEST = (("info_loss", "best logit KL"), ("time_s", "fastest"), ("utilisation", "smallest"))


def _front_summary(front: list[dict[str, Any]], chosen: int) -> list[int]:
    """The rows `dse` prints without --all: the chosen design, then each objective's best (ties broken by
    the other objectives), each once, in that order."""
    shown = [chosen]
    for key, _ in _BEST:
        best = min(range(len(front)), key=lambda i: (front[i][key], *(front[i][k] for k, _ in _BEST)))
        if best not in shown:
            shown.append(best)
    return shown


def _front_role(front: list[dict[str, Any]], i: int, chosen: int, prefer: str) -> str:
    """What a printed front row is: '*' for the chosen design, and the objectives it is best at."""
    roles = [f"* ({prefer})"] if i == chosen else []
    roles += [label for key, label in _BEST if front[i][key] == min(p[key] for p in front)]
    return ", ".join(roles)


def cmd_generate(args: argparse.Namespace) -> int:
    from dtlgen import api
    from dtlgen.atomic import check_destination
    from dtlgen.generator.project import KIND

    check_destination(Path(args.out), KIND, args.force)
    design, _, network = _design_inputs(args)
    calib = _data(args.calib, "--calib", labels=False, network=network)[0] if args.calib else None
    train = _data(args.data, "--data", labels=True, network=network) if args.data else None
    project = api.generate(network, design, Path(args.out), calibration=calib, train=train, flow=args.flow,
                           engine_ip=args.engine_ip, force=args.force, board=args.board, calibration_file=args.calib,
                           progress=_progress(args)).path
    if args.json:
        _print_json({"project": str(project)})
    else:
        parts = ", ".join(sorted(p.name + "/" for p in project.iterdir() if p.is_dir()))
        _out.print(f"project written to {project} ({parts}); C-simulate it with: dtlgen csim {project}; "
                   f"RTL-simulate it with: dtlgen sim {project}", soft_wrap=True, highlight=False)
    return 0


def _hls_check_line(check: dict[str, Any]) -> str:
    """One sentence on the static reading of the HLS C++: findings per rule (the report lists each)."""
    rules: dict[str, int] = {}
    for finding in check["findings"]:
        rules[finding["rule"]] = rules.get(finding["rule"], 0) + 1
    listed = ", ".join(f"{rule} {count}" for rule, count in sorted(rules.items())) or "none"
    return (f"Vitis scheduling patterns in the HLS C++ (a static reading, not Vitis): {len(check['findings'])} "
            f"({listed}). ")


def _hls_estimate_line(estimate: dict[str, Any] | None) -> str:
    """One sentence on the estimated HLS cycles beside the RTL model's (csim_report.json: hls_estimate)."""
    if not estimate:
        return ""
    if "unavailable" in estimate:
        return f"HLS cycle estimate: none ({estimate['unavailable']}). "
    text = (f"HLS cycle estimate (loop counts from C-simulation, cost per loop by rule; no Vitis): FE "
            f"{estimate['fe_cycles']:,} cycles, {estimate['fe_ratio']:.1f}x the RTL model's {estimate['rtl_fe_cycles']:,}")
    if "rl_step_cycles" in estimate:
        text += (f"; RL training step {estimate['rl_step_cycles']:,}, {estimate['rl_ratio']:.1f}x the RTL model's "
                 f"{estimate['rtl_rl_step_cycles']:,}")
    return text + ". "


def cmd_csim(args: argparse.Namespace) -> int:
    from dtlgen.csim import csim_project

    teacher = _teacher(args)  # (a file's checks before the C-simulation of --data's features)
    _strategy_checks(args)
    report = csim_project(Path(args.project), args.steps, _progress(args), _training_set(args), teacher, args.replay,
                          args.regrow)
    if args.json:
        _print_json(report)
        return 0 if report["bit_exact"] else 1
    yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
    rows = [[f"testbench hls/tb_{t['engine']}.cpp (hls/tb_data)", f"{t['checks'] - len(t['failed'])}/{t['checks']} checks",
             yes(t["passed"]), f"{1e3 * t['run_s']:.0f} ms"] for t in report["testbenches"]]
    fe = report["fe"]
    rows += [[f"FE op {op['name']}", f"{op['macs']:,} MACs", yes(op["bit_exact"]), ""] for op in fe["ops"]]
    rows.append(["FE inference, one image", f"{fe['macs']:,} MACs", yes(fe["bit_exact"]), f"{1e3 * fe['run_s']:.1f} ms"])
    training = report.get("training")
    if training:
        kd = training.get("distillation")
        rows.append([f"re-training through the host loop (RL {training['tm']}x{training['tn']}, batch "
                     f"{training['batch']}{', distilled' if kd else ''})", f"{training['steps']} steps",
                     yes(training["bit_exact"]),
                     f"{1e3 * training['run_s']:.0f} ms"])
        if training.get("replayed_samples") or training.get("regrow"):
            rows.append([f"  {_strategy_note(training).strip()}", "", "", ""])
    _show(f"{report['model']} on {report['board']}: C-simulation of the HLS engines vs the golden model",
          ["check", "size", "bit-exact", "run time"], rows,
          f"{report['source']}. g++ build {report['build_s']:.1f} s (0 when cached). "
          + (f"First mismatch: {training['first_mismatch']}. " if training and not training["bit_exact"] else "")
          + _hls_check_line(report["hls_check"]) + _hls_estimate_line(report.get("hls_estimate"))
          + f"Report: {Path(args.project) / 'hls' / 'csim_report.json'}")
    return 0 if report["bit_exact"] else 1


def cmd_bitstream(args: argparse.Namespace) -> int:
    from dtlgen.bitstream import build_bitstream

    post = build_bitstream(Path(args.project), _progress(args), place_and_route=not args.pack_only)
    if args.json:
        _print_json(post)
        return 0
    model = post["model"]
    rows = [[key, f"{post['utilisation'][key]:,}", f"{model['predicted'][key]:,} ({100 * model['error'][key]:+.1f} %)",
             f"{post['available'][key]:,}"] for key in post["utilisation"]]
    if post["fmax_mhz"] is not None:
        rows.append(["Fmax (MHz)", f"{post['fmax_mhz']:.1f}", "",
                     f"target {post['clock_mhz']:g} ({'met' if post['timing_met'] else 'NOT met'})"])
    path = post.get("critical_path")
    if path:
        rows.append(["critical path", f"{path['delay_ns']:.1f} ns", f"{path['from']} -> {path['to']}",
                     f"logic {path['logic_ns']:.1f} ns, routing {path['routing_ns']:.1f} ns; via "
                     + ", ".join(path["rtl"][:6])])
    for key, value in post["gops_at_fmax"].items():
        rows.append([f"{key} at Fmax / at the design clock (model)", f"{value:.2f}", f"{post['gops_at_clock'][key]:.2f}", ""])
    title = (f"bitstream {Path(args.project) / post['bitstream']}" if "bitstream" in post
             else f"{args.project}: packed, not placed (--pack-only)")
    _show(title, ["resource", "nextpnr", "model (error)", "available"], rows,
          f"Source: {post['source']}; model: {model['source']}. Wall time: "
          + ", ".join(f"{k} {v:.0f} s" for k, v in post["wall_s"].items())
          + f". Written to report.json ({'post_route' if 'bitstream' in post else 'post_pack'}).")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from dtlgen.sim.project_sim import simulate_project

    progress = _progress(args)
    teacher = _teacher(args)  # (a file's checks before the C-simulation of --data's features)
    _strategy_checks(args)
    report = simulate_project(Path(args.project), progress, args.retrain, args.steps, args.ddr, _training_set(args),
                              teacher, args.replay, args.regrow)
    if args.json:
        _print_json(report)
        return 0
    rows = [[r["name"], r["engine"], f"{r['macs']:,}", f"{r['predicted_cycles']:,}", f"{r['measured_cycles']:,}",
             f"{r['predicted_gops']:.2f}", f"{r['measured_gops']:.2f}", f"{100 * r['rel_error']:+.2f} %",
             "yes" if r["bit_exact"] else "NO"] for r in report["layers"] + [report["totals"]["fe"]]]
    _show(f"{report['model']} on {report['board']}: RTL simulation vs analytical model at {report['clock_mhz']:g} MHz",
          ["layer", "engine", "MACs", "predicted cycles", "measured cycles", "predicted GOPs", "measured GOPs",
           "rel. error", "bit-exact"], rows,
          f"Measured: {report['source']['measured']}; predicted: {report['source']['predicted']}. "
          f"{_clock_note(report['board'])}Max per-layer error {100 * report['max_layer_abs_error']:.2f} %. Simulator: "
          f"{report['simulator']['cycles_per_s'] / 1e6:.2f} M cycles/s (run only; build {report['simulator']['build_s']:.0f} s). Report: {Path(args.project) / 'sim'}")
    ok = report["totals"]["fe"]["bit_exact"]
    training = report.get("training")
    if training:
        rows = [[r["name"], f"{r['macs']:,}", f"{r['predicted_cycles']:,}", f"{r['measured_cycles']:,}",
                 f"{r['predicted_gops']:.2f}", f"{r['measured_gops']:.2f}", f"{100 * r['rel_error']:+.2f} %"]
                for r in training["descriptors"] + [training["step"]]]
        step = training["step"]
        _show(f"RL engine {training['tm']}x{training['tn']}: one training step (batch {training['batch']}), RTL "
              f"simulation vs analytical model at {report['clock_mhz']:g} MHz",
              ["descriptor", "MACs", "predicted cycles", "measured cycles", "predicted GOPs", "measured GOPs",
               "rel. error"], rows,
              (f"Distilled from --teacher (alpha {training['distillation']['alpha']:g}, T "
               f"{training['distillation']['temperature']}). " if training.get("distillation") else "")
              + f"Weights after each of {training['steps']} steps bit-exact with the golden model: "
              f"{'yes' if training['bit_exact'] else 'NO (' + str(training['first_mismatch']) + ')'}. "
              + _pruning_note(training.get("pruning")) + _strategy_note(training)
              + f"Array efficiency {100 * step['array_efficiency']:.1f} %. Measured: {training['source']['measured']}; "
              f"predicted: {training['source']['predicted']}.")
        ok = ok and training["bit_exact"] and training.get("pruning", {}).get("held_at_zero", True)
    return 0 if ok else 1


def _pruning_note(pruning: dict | None) -> str:
    """A sentence on a pruned network's masks in a re-training run (`project_sim.pruning_report`)."""
    if not pruning:
        return ""
    shares = ", ".join(f"{name} {100 * share:.1f} %" for name, share in pruning["sparsity"].items())
    held = "yes" if pruning["held_at_zero"] else f"NO ({pruning['pruned_nonzero']} non-zero)"
    return f"Pruned ({shares}): pruned weights 0 in every read-back: {held}. "


def _clock_note(board_name: str) -> str:
    """What backs a shipped board's design clock (measured or a target), as a caption sentence."""
    from dtlgen.boards import is_board_name, load_board

    return f"Design clock: {load_board(board_name).clock_basis}. " if is_board_name(board_name) else ""


def _sim_rows(report: dict) -> list[list[str]]:
    if "sim" not in report:
        return []
    total = report["sim"]["totals"]["fe"]
    csim = report.get("csim")
    rows = [] if csim is None else [
        [f"HLS C++ in C-simulation (g++): FE image + {csim['training_steps']} training steps bit-exact vs golden",
         "yes" if csim["bit_exact"] else "NO"]]
    return rows + [["FE engine in RTL simulation: bit-exact vs golden model", "yes" if total["bit_exact"] else "NO"],
            ["  measured / predicted cycles per image (error)",
             f"{total['measured_cycles']:,} / {total['predicted_cycles']:,} ({100 * total['rel_error']:+.2f} %)"],
            ["  measured GOPs at the design clock", f"{total['measured_gops']:.2f}"]] + _device_rows(report)


def _device_rows(report: dict) -> list[list[str]]:
    if "device_retrain" not in report:
        return []
    d = report["device_retrain"]
    step = d["step"]
    return [[f"on-device re-training in RTL simulation ({d['steps']} steps): weights bit-exact vs golden",
             f"{'yes' if d['bit_exact'] else 'NO'} ({d['steps_checked']} steps checked)"],
            ["  target accuracy: RTL-re-trained / golden model / float64",
             f"{100 * d['acc_device']:.2f} / {100 * d['acc_golden']:.2f} / {100 * d['acc_float']:.2f} %"],
            ["  measured / predicted cycles per training step (error)",
             f"{step['measured_cycles']:,} / {step['predicted_cycles']:,} ({100 * step['rel_error']:+.2f} %)"],
            ["  measured GOPs of a training step at the design clock", f"{step['measured_gops']:.2f}"]] + _bitstream_rows(report)


def _bitstream_rows(report: dict) -> list[list[str]]:
    if "bitstream" not in report:
        return []
    b = report["bitstream"]
    used, predicted = b["utilisation"], b["model"]["predicted"]
    return [[f"bitstream (yosys/nextpnr/ecppack, {b['wall_s_total'] / 60:.0f} min)", b["bitstream"]],
            ["  LUT4 / FF / MULT18X18D / DP16KD post-route (model)",
             " / ".join(f"{used[k]:,} ({predicted[k]:,})" for k in ("lut4", "ff", "mult18", "dp16kd"))],
            ["  post-route Fmax (nextpnr) vs design clock",
             f"{b['fmax_mhz']:.1f} MHz vs {b['clock_mhz']:g} MHz ({'met' if b['timing_met'] else 'NOT met'})"]]


def _seeded_rows(report: dict) -> list[list[str]]:
    seeded = report.get("seeded")
    if seeded is None:
        return []
    sent, frozen = seeded["transmitted_bytes"], seeded["pretrained_frozen"]
    generated = seeded.get("generated_on_chip") or []
    where = ("generated on chip" if len(generated) == len(seeded["layers"]) else
             f"generated on chip for {', '.join(generated)}, the others stored" if generated else "stored in memory")
    rows = [[f"seeded {seeded['kind']} convs ({', '.join(seeded['layers'])}; the knee design's weights {where}): "
             "bytes to send (seeds + learnable)",
             f"{sent['seeds']:,} + {sent['learnable']:,} = {sent['total']:,} B"],
            ["  vs the pretrained-frozen hybrid model",
             f"{seeded['hybrid_bytes']:,} B: {100 * seeded['transmitted_reduction']:.1f} % less (retrainable layers "
             + ("started from the seed, not sent)" if seeded["head_start"] == "seed"
                else f"sent as trained on the source, {seeded['retrainable_bytes']:,} B)")],
            ["  target accuracy, fixed point: seeded / pretrained-frozen",
             f"{100 * seeded['acc_fixed']:.2f} % / {100 * frozen['acc_fixed']:.2f} % "
             f"({_pt(seeded['fixed_vs_pretrained_frozen_pt'])})"]]
    if "acc_device" in seeded:
        rows.append(["  seeded, after RTL re-training vs pretrained-frozen (golden)",
                     f"{100 * seeded['acc_device']:.2f} % ({_pt(seeded['device_vs_pretrained_frozen_pt'])})"])
    return rows


def _strategy_rows(report: dict[str, Any]) -> list[list[str]]:
    s = report.get("strategies")
    if not s:
        return []
    t, kd = s["teacher"], s["distillation"]
    rows = [["teacher (float, fine-tuned end to end; student: re-trained layers)",
             f"{100 * t['acc_test']:.2f} % ({t['trainable_params']:,} params; student {s['student']['trainable_params']:,})"],
            [f"  distillation a={kd['alpha']:g} T={kd['temperature']} vs cross-entropy (golden)",
             f"{100 * kd['acc_distillation']:.2f} % vs {100 * kd['acc_cross_entropy']:.2f} % ({_pt(kd['gain_pt'])})"]]
    h = s.get("halting")
    if h:
        c = h["cycles"]
        where = f"after epoch {h['halted_epoch']}" if h["halted_epoch"] is not None else "never"
        seen = f"{h['probe_samples']} probe samples" if h["probe_samples"] else "the epoch's predictions"
        rows += [[f"  halting ({h['loss']}; agreement {h['agreement']:g} with the teacher, {seen}): fired {where}, "
                  "RTL cycles",
                  f"{c['total']:,} = {100 * c['ratio']:.1f} % of {c['fixed_schedule']:,} "
                  f"({h['epochs_run']} of {h['epochs_planned']} epochs)"],
                 [f"  halted vs fixed schedule accuracy ({h['loss']}; RTL weights)",
                  f"{100 * h['acc_halted']:.2f} % vs {100 * h['acc_fixed_schedule']:.2f} % ({_pt(-h['loss_pt'])}), "
                  f"bit-exact: {'yes' if h['bit_exact'] else 'NO'}"]]
    p = s.get("pruning")
    if p:
        sp, before, after = p["sparsity"], p["before"], p["after"]
        regrow, alone = p["regrow"], p["no_replay"]
        rows += [[f"  pruned FE {100 * sp['fe']:.0f} % / head {100 * sp['rl']:.0f} %, head re-trained in RTL on new data "
                  f"(+{p['scenario']['replayed_source_samples']} replayed): new-data accuracy",
                  f"{100 * before['new']:.2f} % -> {100 * after['new']:.2f} % ({_pt(p['new_gain_pt'])})"],
                 ["    held-out source accuracy; pruned weights 0 after the schedule; bit-exact",
                  f"{100 * before['source']:.2f} % -> {100 * after['source']:.2f} % ({_pt(-p['source_loss_pt'])}); "
                  f"{'yes' if p['held_at_zero'] else 'NO'}; {'yes' if p['bit_exact'] else 'NO'}"],
                 ["    masks off (regrow) / no replay, golden: new / source accuracy",
                  f"{100 * regrow['new']:.2f} / {100 * regrow['source']:.2f} % (head {100 * regrow['sparsity_rl_after']:.0f} "
                  f"% zero) / {100 * alone['new']:.2f} / {100 * alone['source']:.2f} %"]]
        fe = p.get("fe")
        if fe:
            rows += [[f"    pruned FE in RTL, {len(fe['sparse_layers'])} convs stored sparse: weights in DRAM; cycles "
                      "(model) vs stored dense (model); bit-exact",
                      f"{fe['weight_bytes']:,} B vs {fe['weight_bytes_dense']:,} B; {fe['cycles']:,} "
                      f"({fe['cycles_model']:,}) vs {fe['cycles_dense_model']:,}; "
                      f"{'yes' if fe['bit_exact'] else 'NO'}"]]
    return rows


def _strategy_note(training: dict[str, Any]) -> str:
    """A sentence on --replay / --regrow in a re-training report (none without them)."""
    return ((f"{training['replayed_samples']} cached samples replayed beside --data's. "
             if training.get("replayed_samples") else "")
            + ("Re-trained without the pruning masks (--regrow). " if training.get("regrow") else ""))


def _pt(value: float) -> str:
    """A difference in points, signed, without a negative zero."""
    return f"{0.0 if abs(value) < 0.005 else value:+.2f} pt"


def cmd_demo(args: argparse.Namespace) -> int:
    from dtlgen.demo import DemoConfig, run_demo

    if args.source_head and not (args.seeded or args.seeded_kind is not None):
        raise DesignError("--source-head is for a seeded model: add --seeded")
    shares = _prune_shares(args)
    if args.no_prune and shares is not None:
        raise DesignError("--no-prune skips the pruning scenario: drop --prune, or --no-prune")
    if shares is not None:
        if not shares.get("rl"):
            raise DesignError("--prune: the pruning scenario re-trains a pruned head: give rl=S above 0 (e.g. "
                              "fe=0.7,rl=0.8)")
        if "rl_neurons" in shares:
            raise DesignError("--prune: the demo's pruning scenario masks weights (fe, rl); rl_neurons (whole neurons) "
                              "is for the other commands and benchmarks/pruning.py")
        from dtlgen.model import load_model
        from dtlgen.model.prune import part_masks

        part_masks(load_model(DemoConfig.model), shares)  # a share that empties a layer: refused before any work
    if args.no_halt and (args.halt is not None or args.halt_probe is not None or args.halt_loss is not None):
        raise DesignError("--no-halt skips the halting run: drop --halt / --halt-probe / --halt-loss, or --no-halt")
    chosen = {key: value for key, value in (("epochs", args.epochs), ("seeded_kind", args.seeded_kind),
                                            ("kd_alpha", args.kd_alpha), ("kd_temperature", args.kd_temperature),
                                            ("teacher_epochs", args.teacher_epochs), ("halt", args.halt),
                                            ("halt_probe", args.halt_probe)) if value is not None}
    config = DemoConfig(board=args.board, bitstream=args.bitstream, seeded=args.seeded or args.seeded_kind is not None,
                        seeded_head=not args.source_head, distill=args.distill, **chosen,
                        **({"halt_distill": args.halt_loss == "distillation"} if args.halt_loss else {}),
                        **({"halt": None} if args.no_halt else {}),
                        **({"prune_fe": shares.get("fe", 0.0), "prune_rl": shares["rl"]} if shares else {}),
                        **({"prune": False} if args.no_prune else {}))
    try:
        config.distillation()
    except ValueError as error:
        raise DesignError(f"--kd-alpha / --kd-temperature: {error}") from None
    progress = _progress(args)
    report = run_demo(Path(args.out), config, progress, force=args.force)
    if args.json:
        _print_json(report)
        return 0
    r, sizes, red = report["retrain"], report["size_bytes"], report["size_reduction"]
    dse = report["dse"]
    d = dse["design"]
    _show(
        f"DTL demo: {report['model']}, target = digits {report['task']['target']}",
        ["metric", "value"],
        [["target accuracy before re-training (float)", f"{100 * r['acc_before']:.2f} %"],
         ["target accuracy after float64 re-training", f"{100 * r['acc_float']:.2f} %"],
         ["target accuracy after fixed-point re-training (golden model)", f"{100 * r['acc_fixed']:.2f} %"],
         ["fixed - float", _pt(100 * (r['acc_fixed'] - r['acc_float']))],
         ["size fp32", f"{sizes['fp32']:,} B"],
         ["size uniform 16-bit", f"{sizes['uniform16']:,} B"],
         ["size hybrid (FE %d-bit%s, RL %d-bit)" % (report["precision"]["w_bits"],
                                                     ", seeded weights at their own width, scales 16-bit"
                                                     if "seeded" in report else "", report["precision"]["rl_bits"]),
          f"{sizes['hybrid']:,} B"],
         ["reduction vs fp32 / vs uniform 16-bit", f"{100 * red['vs_fp32']:.1f} % / {100 * red['vs_uniform16']:.1f} %"],
         ["FE feature SQNR / logit KL (test set)",
          f"{report['info_loss'].get('feature_sqnr_db', float('nan')):.1f} dB / {report['info_loss']['logit_kl']:.4f}"],
         [f"DSE on {dse['board']}: knee design FE tm x tn, tr x tc / RL tm x tn",
          f"{d['fe']['tm']}x{d['fe']['tn']}, {d['fe']['tr']}x{d['fe']['tc']} / {d['rl']['tm']}x{d['rl']['tn']}"],
         ["  predicted FE GOPs / RL GOPs (analytical model)",
          f"{d['predicted']['fe_gops']:.2f} / {d['predicted']['rl_gops']:.2f}"],
         ["  DSP / BRAM18 / LUT", f"{d['predicted']['dsp']} / {d['predicted']['bram18']} / {d['predicted']['lut']}"],
         [f"design clock: {report['clock']['basis']}", f"{report['clock']['mhz']:g} MHz"],
         *_sim_rows(report), *_seeded_rows(report), *_strategy_rows(report)],
        caption=f"{r['steps']} training steps of batch {r['batch']} on {r['retrain_samples']} target images, "
                f"tested on {r['test_samples']} held-out ones. Source: {report['figures_from']}. "
                f"DSE: {dse['evaluations']} evaluations, {dse['front_size']} Pareto points in {dse['out_dir']}. "
                f"Report: {report['out_dir']}/demo_report.json")
    return 0


# --- parser ------------------------------------------------------------------------------------
MAX_WORKERS = 256  # Dask worker processes on one machine
MAX_SEARCH = 10_000  # NSGA-II population or generations
_FORCE_HELP = ("replace an earlier dtlgen output of this kind even if files in it were edited (never one that "
               "holds files dtlgen did not write)")


def _add_teacher_options(p: argparse.ArgumentParser, what: str) -> None:
    """--teacher, --kd-alpha, --kd-temperature of csim and sim (read by `_teacher`)."""
    p.add_argument("--teacher", metavar="TEACHER.npz",
                   help=f"{what}: an NPZ file with an array logits, a teacher's float logits of each sample of the "
                        "re-training set (the project's, or --data's), in its order")
    p.add_argument("--kd-alpha", type=_share, default=None,
                   help="with --teacher: the weight of its soft targets, 0 to 1 in steps of 1/256 (default 0.5)")
    p.add_argument("--kd-temperature", type=_bounded(1, 16), default=None,
                   help="with --teacher: the temperature, a power of two from 1 to 16 (default 2)")


def _add_strategy_options(p: argparse.ArgumentParser, what: str) -> None:
    """--replay and --regrow of csim and sim (`RLProject.strategies`)."""
    p.add_argument("--replay", type=_replay_share, default=0.0, metavar="S",
                   help=f"{what}: mix S x len(--data) of the project's cached re-training samples into --data's set "
                        "against forgetting (0 to 16; needs --data)")
    p.add_argument("--regrow", action="store_true",
                   help=f"{what} without a pruned project's masks: its pruned weights may grow back")


def _replay_share(text: str) -> float:
    """--replay: cached samples per new one, from 0 to 16."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 16.0):
        raise argparse.ArgumentTypeError(f"{text[:40]} must be a number from 0 to 16 (0.5: half as many cached samples "
                                         "as new ones)")
    return value


_replay_share.__name__ = "share"


def build_parser() -> argparse.ArgumentParser:
    from dtlgen._version import __version__

    parser = argparse.ArgumentParser(prog="dtlgen", description="Generate FPGA accelerators that re-train on the device.")
    parser.add_argument("--version", action="version", version=f"dtlgen {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback (also DTLGEN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("boards", help="list the supported boards")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("import", help="import a model and print its layers (Network IR)")
    p.add_argument("model", metavar="MODEL", help="zoo name (digits_cnn, vgg16_cifar, resnet18_cifar, "
                                                   "mobilenet_v1_cifar, resnet18_imagenet, mobilenet_v2_imagenet) or "
                                                   "path/to/file.py:factory")
    _add_weights_option(p)
    _add_split_options(p)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("perf", help="predict cycles, GOPs and resources of a design (analytical model)")
    p.add_argument("model", metavar="MODEL", help="zoo name or path/to/file.py:factory")
    _add_weights_option(p)
    p.add_argument("--design", required=True, help="design.json (from 'dtlgen dse' or written by hand)")
    p.add_argument("--board", help="board name or .yaml (default: the design's board)")
    _add_split_options(p)
    p.add_argument("--ddr", action="store_true",
                   help="predict the FE on the DDR-like memory of the board file's DRAM timing (rows, banks, refresh)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_perf)

    p = sub.add_parser("dse", help="NSGA-II design-space exploration; writes the Pareto front and design.json")
    p.add_argument("model", metavar="MODEL", help="zoo name or path/to/file.py:factory")
    _add_weights_option(p)
    p.add_argument("--board", required=True, help="board name or .yaml")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--pop", type=_bounded(1, MAX_SEARCH), default=100, help="population size (default %(default)s)")
    p.add_argument("--gens", type=_bounded(1, MAX_SEARCH), default=100, help="generations (default %(default)s)")
    p.add_argument("--seed", type=_non_negative_int, default=1, help="random seed (default %(default)s)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--fe-batch", type=_bounded(1, 64), default=1, metavar="B",
                   help="images per FE run, the workload's (feature caching runs the re-training set in batches; "
                        "each layer's weights then cross the bus once per batch); default %(default)s")
    p.add_argument("--prefer", default="knee", choices=("knee", "throughput", "accuracy", "resources"),
                   help="which Pareto point becomes design.json (default %(default)s)")
    p.add_argument("--prefetch", choices=("auto", "search", "off"), default="auto",
                   help="the FE engine's read FIFO of prefetched requests (design field fe.prefetch), on a board whose "
                        "memory answers in 16 cycles or more: its convs' next loads go out a trip ahead. auto: each "
                        "design of the front gets it where it still fits and the model finds it faster; search: "
                        "NSGA-II searches it; off: never (default %(default)s)")
    p.add_argument("--ddr", action="store_true",
                   help="rank the FE on the board's DDR-like memory (rows, banks, refresh from the board file's "
                        "dram fields; the closed form `dtlgen sim --ddr` checks) instead of the ideal memory")
    p.add_argument("--max-latency-ms", type=_positive_float, metavar="MS",
                   help="keep only designs that take an image to its logits within MS milliseconds at the design "
                        "clock (its FE run, the batch's, and the RL forward; analytical model)")
    p.add_argument("--max-param-bytes", type=_byte_count, metavar="B",
                   help="keep only designs whose parameters take at most B bytes at their bit widths (weights, "
                        "biases and scales, as the report's hybrid size)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_bounded(1, MAX_WORKERS), default=0,
                       help=f"evaluate on a local Dask cluster of N worker processes (at most {MAX_WORKERS})")
    where.add_argument("--dask", metavar="tcp://HOST:PORT", type=_dask_address,
                       help="evaluate on an existing Dask scheduler")
    _add_split_options(p)
    p.add_argument("--calib", metavar="DATA.npz", help=_CALIB_HELP)
    p.add_argument("--all", action="store_true",
                   help="print the whole Pareto front (default: the chosen design and each objective's best)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_dse)

    p = sub.add_parser("generate", help="write a project (HLS C++, RTL, board project, driver, tests) for a design")
    p.add_argument("model", metavar="MODEL", help="zoo name or path/to/file.py:factory")
    _add_weights_option(p)
    p.add_argument("--design", required=True, help="design.json (from 'dtlgen dse')")
    p.add_argument("--out", required=True, help="project directory")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--board", help="board name or .yaml, for a design.json that does not embed its board "
                                   "(default: the design's own)")
    p.add_argument("--flow", default="auto", choices=("auto", "vivado", "open-ecp5"),
                   help="board flow: auto (the board's own), vivado (Xilinx: hls/, vivado/, driver/, Makefile) or "
                        "open-ecp5 (Lattice: the RTL for 'dtlgen bitstream')")
    p.add_argument("--engine-ip", default="rtl", choices=("rtl", "hls"),
                   help="Xilinx boards: the engines the Vivado block design instantiates: rtl (default: the "
                        "SystemVerilog engines that 'dtlgen sim' measures) or hls (the Vitis HLS IP of the C++ "
                        "engines, whose speed nothing here measures)")
    p.add_argument("--calib", metavar="DATA.npz", help=_CALIB_HELP + "; give the file the DSE used")
    p.add_argument("--data", metavar="DATA.npz", help="the re-training set whose FE features the project caches for "
                   "'csim' and 'sim --retrain': arrays x (N, C, H, W) floats and y (N) class labels (default: the "
                   "calibration inputs with seeded labels, a hardware check rather than a task)")
    _add_split_options(p)
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("csim", help="C-simulate a project's HLS engines with g++, bit-exact against the golden model")
    p.add_argument("project", metavar="PRJ", help="project directory from 'dtlgen generate'")
    p.add_argument("--steps", type=_bounded(0, MAX_STEPS), default=5,
                   help=f"re-training steps through the host loop (default 5; 0: none; at most {MAX_STEPS:,})")
    p.add_argument("--data", metavar="DATA.npz", help=_DATA_HELP)
    _add_teacher_options(p, "distil the re-training steps")
    _add_strategy_options(p, "re-train")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_csim)

    p = sub.add_parser("bitstream", help="build an ECP5 project's bitstream with the open flow (yosys, nextpnr, ecppack)")
    p.add_argument("project", metavar="PRJ", help="project directory from 'dtlgen generate' for an ECP5 board")
    p.add_argument("--pack-only", action="store_true",
                   help="stop after nextpnr's packing: the post-route cell counts in minutes, no Fmax, no .bit")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_bitstream)

    p = sub.add_parser("sim", help="simulate a project's engines (cocotb + Verilator) against golden model and model")
    p.add_argument("project", metavar="PRJ", help="project directory from 'dtlgen generate'")
    p.add_argument("--retrain", action="store_true",
                   help="also re-train on the RL engine through the host loop, bit-exact against the golden model")
    p.add_argument("--steps", type=_bounded(1, MAX_STEPS), default=20,
                   help=f"training steps with --retrain (default 20; at most {MAX_STEPS:,})")
    p.add_argument("--data", metavar="DATA.npz", help=_DATA_HELP + " (with --retrain)")
    p.add_argument("--ddr", action="store_true",
                   help="run the FE on the DDR-like memory with the board file's DRAM timing (rows, banks, "
                        "refresh) and predict with the model's closed form for it")
    _add_teacher_options(p, "with --retrain, distil")
    _add_strategy_options(p, "with --retrain, re-train")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="run the DTL demo on built-in defaults")
    p.add_argument("--out", default="dtlgen-demo", help="output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help=_FORCE_HELP)
    p.add_argument("--epochs", type=_bounded(1, 1000), default=None, help="re-training epochs (default 30)")
    p.add_argument("--board", default="pynq-z2", help="board to explore and generate for (default %(default)s)")
    p.add_argument("--bitstream", action="store_true",
                   help="ECP5 boards: also build the knee design's bitstream with the open flow (tens of minutes)")
    p.add_argument("--seeded", action="store_true",
                   help="seed the frozen convs (weights regenerated from a seed, scales and biases learnt) and "
                        "compare with the pretrained-frozen model")
    p.add_argument("--seeded-kind", choices=SEEDED_KINDS, default=None,
                   help="the seeded weights: sign (+-1, the default) or intB (B-bit integers); implies --seeded")
    p.add_argument("--source-head", action="store_true",
                   help="with --seeded, re-train the retrainable layers from their source-trained values (sent with "
                        "the model) instead of values drawn from the seed (the default, sent as the seed)")
    p.add_argument("--distill", action="store_true",
                   help="re-train (golden model and RTL) with distillation from the teacher, not cross-entropy alone")
    p.add_argument("--kd-alpha", type=_share, default=None,
                   help="distillation: the weight of the teacher's soft targets, 0 to 1 in steps of 1/256 (default 0.5)")
    p.add_argument("--kd-temperature", type=_bounded(1, 16), default=None,
                   help="distillation: the temperature, a power of two from 1 to 16 (default 2)")
    p.add_argument("--teacher-epochs", type=_bounded(1, 1000), default=None,
                   help="epochs of the teacher's end-to-end float fine-tuning on the re-training set (default 30)")
    p.add_argument("--halt", type=_share, default=None, metavar="AGREEMENT",
                   help="the halting run stops once this share of an epoch's predictions agrees with the teacher's "
                        "(default 0.92)")
    p.add_argument("--halt-probe", type=_bounded(0, 10_000), default=None,
                   help="the halting rule reads the predictions of this many re-training samples in extra forward "
                        "passes after each epoch, instead of the epoch's own (default 0: the epoch's own)")
    p.add_argument("--halt-loss", choices=("distillation", "cross-entropy"), default=None,
                   help="the halting run's loss (default distillation: early-halting distillation)")
    p.add_argument("--no-halt", action="store_true", help="skip the halting run (an RTL re-training)")
    p.add_argument("--prune", type=_prune_option, action="append", metavar="fe=S,rl=S",
                   help="the pruning scenario's shares of the frozen (fe) and retrainable (rl) weights removed by "
                        "magnitude (default fe=0.7,rl=0.8)")
    p.add_argument("--no-prune", action="store_true",
                   help="skip the pruning scenario (a second project, re-trained on new data in RTL simulation)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cache", help="show or clear dtlgen's build cache (Verilator and g++ builds)")
    p.add_argument("action", choices=("info", "clear"), help="info: where it is and its size; clear: remove "
                   "dtlgen's builds")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=cmd_cache)
    return parser


_CALIB_HELP = ("calibration inputs: an NPZ file with an array x (N, C, H, W) of floats, the data that sets each "
               "tensor's fixed-point format and scores information loss (default: the model's built-in inputs)")
_DATA_HELP = ("re-train on this set instead of the project's cached one: an NPZ file with arrays x (N, C, H, W) "
              "floats and y (N) class labels; its FE features come from the C-simulation of the project's FE "
              "engine")


def _add_weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", metavar="FILE.pt", help="the model's trained weights: a state_dict saved with "
                   "torch.save(model.state_dict(), FILE), loaded with weights_only=True (default: the weights the "
                   "model comes with; the zoo's are seeded random ones)")
    p.add_argument("--seeded", action="store_true",
                   help="seed the frozen convs (every dense or depthwise one): their weights regenerated from "
                        "--weight-seed on chip, only per-channel scales and biases learnt (trained on --source)")
    p.add_argument("--seeded-layers", metavar="L1,L2",
                   help="seed only these frozen convs (comma-separated layer names); implies --seeded")
    p.add_argument("--weight-seed", type=_bounded(0, 2**32 - 1), default=None, metavar="N",
                   help="with --seeded: the seed of the seeded weights (default 1)")
    p.add_argument("--seeded-kind", choices=SEEDED_KINDS, default=None,
                   help="with --seeded: sign (+-1, the default, generated on chip) or intB (B-bit integers, stored)")
    p.add_argument("--source", metavar="DATA.npz",
                   help="with --seeded: the source task (arrays x (N, C, H, W) floats, y (N) labels) on which the "
                        "seeded model's learnable parameters are trained (default: none; the scales stay at He's "
                        "initial value, a warning)")
    p.add_argument("--source-epochs", type=_bounded(1, 10_000), default=None, metavar="N",
                   help="with --seeded --source: training epochs (default 40)")
    p.add_argument("--prune", type=_prune_option, action="append", metavar="fe=S,rl=S,rl_neurons=S",
                   help="magnitude pruning: remove the share S of a part's conv / linear weights, the smallest first "
                        "(one threshold over the part), in the frozen part (fe) and the retrainable part (rl); the RL "
                        "engine keeps a mask bit per weight and holds the removed ones at 0 while re-training "
                        "(e.g. fe=0.7,rl=0.8); rl_neurons=S removes that share of the retrainable layers' neurons "
                        "(a narrower head)")
    p.add_argument("--adapters", choices=("tail", "deep", "all"), default=None,
                   help="residual adapters (identity 1x1 convs) after the last block, the deeper half of the blocks or "
                        "every block of the frozen part; they train with the head, the convs between them stay fixed "
                        "(the RL engine runs every placement, max-pools included)")


def _add_split_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--split", metavar="NAME|INDEX", help="first retrainable layer, by name or index")
    group.add_argument("--retrain-last", type=_positive_int, metavar="K",
                       help="retrain the last K conv/linear layers")


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text[:40]} must be a positive, finite number")
    return value


_positive_float.__name__ = "number"  # argparse names the type in its messages


def _share(text: str) -> float:
    """A share from 0 to 1 (a ratio of samples, a loss weight)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise argparse.ArgumentTypeError(f"{text[:40]} must be a number from 0 to 1")
    return value


_share.__name__ = "share"


def _byte_count(text: str) -> int:
    return _int_at_least(text, 1, 2 ** 53)


_byte_count.__name__ = "integer"


def _int_at_least(text: str, lowest: int, highest: int = 2 ** 31 - 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not an integer") from None
    if not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(f"{text[:40]} must be an integer from {lowest} to {highest:,}")
    return value


def _bounded(lowest: int, highest: int):
    def parse(text: str) -> int:
        return _int_at_least(text, lowest, highest)

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


def _dask_address(text: str) -> str:
    import re

    if not re.fullmatch(r"(tcp|tls|inproc|ucx)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a Dask scheduler address; write it as tcp://HOST:PORT")
    return text


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and staging clean-up runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("DTLGEN_DEBUG", "") not in ("", "0")
    say = lambda text: _err.print(f"dtlgen {args.command}: {_one_line(text)}", markup=False, highlight=False)  # noqa: E731
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (main() called from a library user's thread)
        previous = None
    try:
        with warnings.catch_warnings():
            # dtlgen's own warnings as one line each, like its errors; the rest as Python prints them
            shown = warnings.showwarning
            warnings.simplefilter("always", DtlgenWarning)
            warnings.showwarning = lambda message, category, *rest: (  # noqa: E731
                say(f"warning: {message}") if issubclass(category, DtlgenWarning) else shown(message, category, *rest))
            with using(_progress(args)):
                return args.func(args)
    except DtlgenError as exc:
        say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; nothing half-written was left behind")
        return 130
    except BrokenPipeError:
        # stdout went to a program that stopped reading (`| head`): nothing is wrong with the input.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return 141
    except Terminated:
        say("terminated; nothing half-written was left behind")
        return 143
    except MemoryError:
        say("error: out of memory; choose a smaller design or model, or a machine with more memory")
        return 1
    except OSError as exc:
        # An environment problem the commands did not anticipate by name: a full disk, a permission.
        where = f" '{exc.filename}'" if exc.filename else ""
        say(f"error: cannot access{where} ({exc.strerror or exc}); check the path, its permissions and free space")
        if debug:
            traceback.print_exc()
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place a bug becomes an exit status
        say(f"internal error ({type(exc).__name__}: {exc}); please report it with the command line"
            + ("" if debug else "; re-run with --debug or DTLGEN_DEBUG=1 for the traceback"))
        if debug:
            traceback.print_exc()
        return 3
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
