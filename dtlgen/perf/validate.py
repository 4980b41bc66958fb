"""One validation of a design against (network, board), used by every command that takes a design.

`design_problems` lists what makes a design impossible on a board: tiles beyond the engines' limits,
an operation the FE RTL cannot run (kernel, stride window, bit width, accumulator width), resources
beyond the board (the analytical model's verdict, or the calibrated board design on ECP5), RL weights
that do not fit on chip. It is cheap (no quantisation), so the DSE applies it to every candidate and
proposes only designs that pass; `perf`, `generate` and `dse` refuse the rest with the same words.
`check_design_matches` checks that a design.json was made for this network and split.

Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dtlgen.boards import Board
from dtlgen.errors import DesignError, brief
from dtlgen.host.rl_program import PERF_BASE
from dtlgen.model.ir import Network
from dtlgen.isa import fe as isa_fe, rl as isa_rl
from dtlgen.perf.design import Design
from dtlgen.perf.fe import FEConfig, FEOp, fe_ops
from dtlgen.quant import fixed

# Tiles beyond these are no engine anyone can build (a 1024x1024 FE array is a million multipliers);
# the caps stop absurd numbers before any arithmetic or code generation sees them.
FE_TILE_MAX = {"tm": 1024, "tn": 1024, "tr": 256, "tc": 256}
RL_TILE_MAX = {"tm": 256, "tn": 256, "batch": 4096}
FE_RTL_BITS = isa_fe.ELEMENT_BITS  # the FE RTL's widest element: one byte (weights packed below 5 bits)
FE_ACC_BITS = isa_fe.ACC_BITS  # the FE RTL's accumulators and bias words
K_MAX_ENGINE, S_MAX_ENGINE = isa_fe.K_MAX, isa_fe.S_MAX


def fe_op_problem(op: FEOp, cfg: FEConfig) -> str | None:
    """Why the FE RTL cannot run `op` with `cfg`, or None."""
    if cfg.a_bits > FE_RTL_BITS or cfg.w_bits > FE_RTL_BITS:
        return (f"fe.a_bits={cfg.a_bits}, fe.w_bits={cfg.w_bits}: the FE RTL takes elements of up to one byte; use bit "
                f"widths up to {FE_RTL_BITS}")
    kind = {"conv": isa_fe.KIND_CONV, "add": isa_fe.KIND_ADD}.get(op.kind, isa_fe.KIND_AVGPOOL)  # (a pool)
    problem = isa_fe.window_problem(kind, op.k, op.s, op.r, op.c, cfg.tr, cfg.tc)
    if problem:
        fix = (f"use kernels up to {K_MAX_ENGINE}" if kind == isa_fe.KIND_CONV and op.k > K_MAX_ENGINE else
               f"use stride ≤ {S_MAX_ENGINE} and kernels ≤ {K_MAX_ENGINE}, or larger tiles")
        return f"layer '{op.name}': {problem}; {fix}"
    if op.kind == "conv":
        terms = op.macs // (op.m * op.r * op.c)  # K·K·N/groups products a sum (a grouped conv's zero blocks add none)
        acc = fixed.accumulator_bits(terms, cfg.w_bits, cfg.a_bits)
        if acc > FE_ACC_BITS:
            return (f"layer '{op.name}' needs {acc}-bit accumulators; the FE RTL has {FE_ACC_BITS}: lower fe.w_bits "
                    "or fe.a_bits")
    return None


def design_problems(network: Network, design: Design, board: Board, prediction: Any = None) -> list[str]:
    """Everything that makes `design` impossible for `network` on `board` (empty: it can be built).

    `prediction` is `dtlgen.perf.predict`'s result for the same arguments, when the caller has it."""
    problems = structural_problems(network, design, board)
    if problems:
        return problems
    if prediction is None:
        from dtlgen.perf import predict

        prediction = predict(network, design, board)
    return list(prediction.violations)


def network_problems(network: Network) -> list[str]:
    """What no design can fix: a split that leaves the FE engine nothing to run, or retrainable layers
    the RL engine cannot train (the latter raises UnsupportedLayerError naming the layer)."""
    from dtlgen.perf.rl import rl_gemms

    rl_gemms(network)
    if not any(layer.has_weights for layer in network.frozen_layers):
        where = network.layers[network.split_index].name if network.split_index < len(network.layers) else "-"
        return [f"the split at '{where}' leaves no frozen conv or linear layer for the FE engine: put the split "
                "after at least one of them"]
    return []


def structural_problems(network: Network, design: Design, board: Board) -> list[str]:
    """The problems that are not resources: tiles beyond the engines' limits, operations the RTL cannot
    run, RL layers whose descriptor fields would not fit."""
    problems = []
    for section, caps in (("fe", FE_TILE_MAX), ("rl", RL_TILE_MAX)):
        cfg = getattr(design, section)
        for name, cap in caps.items():
            if getattr(cfg, name) > cap:
                problems.append(f"{section}.{name}={brief(getattr(cfg, name), 12)} exceeds {cap}, "
                                f"the largest the {section.upper()} engine is built with")
    if problems:  # the model's arithmetic on absurd tiles is meaningless: stop here
        return problems
    problems = network_problems(network)
    if problems:
        return problems
    if design.fe.batch > 1 and board.toolchain == "open-ecp5":
        return [f"fe.batch={design.fe.batch}: the {board.name} board design holds the FE memory image on chip, "
                "sized for one image; use fe.batch 1 on this board"]
    for op in fe_ops(network, design.fe):
        problem = fe_op_problem(op, design.fe)
        if problem:
            return [problem]
    return rl_field_problems(network, design.rl, board)


RL_FIELD_MAX = isa_rl.FIELD_MAX  # the RL descriptor's 16-bit fields
RL_LIST_COUNTERS = PERF_BASE["backward"] - PERF_BASE["forward"]  # perf counters per RL descriptor list


def rl_field_problems(network: Network, cfg: Any, board: Board) -> list[str]:
    """RL layers, batch and tiling whose descriptor values would not fit their 16-bit fields (the
    generator's layout check, `rl_program._check_ranges`, says the same about a planned layout)."""
    from dtlgen.perf.rl import bank_depths, rl_gemms, stash_lanes

    gemms = rl_gemms(network)
    if not gemms:
        return []
    if 2 * len(gemms) + 1 > RL_LIST_COUNTERS:
        return [f"{len(gemms)} retrainable layers: the RL engine counts the cycles of at most {RL_LIST_COUNTERS} "
                f"descriptors a list, and the backward list has 2 per layer + 1; retrain at most "
                f"{(RL_LIST_COUNTERS - 1) // 2} layers"]
    for g in gemms:
        mt, nt = -(-g.m // cfg.tm), -(-g.n // cfg.tn)
        for what, value in ((f"M={g.m}", g.m), (f"N={g.n}", g.n),
                            ("the n-tiles of [W | b]", isa_rl.update_tiles(g.taps, nt, -(-(g.n + 1) // cfg.tn))),
                            ("the weight tiles per m-tile row", g.taps * nt), ("the m-tiles of the taps", g.taps * mt),
                            ("the batch's GEMM rows", cfg.batch * max(g.positions, g.rows_in))):
            if value > RL_FIELD_MAX:
                return [f"layer '{g.name}': {what} ({value}) does not fit the RL descriptor's 16-bit field"]
    depths = bank_depths(gemms, cfg, stash_lanes(cfg.tm, cfg.tn, board.dram_bytes_per_cycle))
    for key, what, limit in (("w_depth", "weight tiles", RL_FIELD_MAX), ("b_depth", "bias rows", RL_FIELD_MAX),
                             ("a_depth", "activation-stash words", RL_FIELD_MAX + 1),
                             ("g_depth", "gradient-stash words", RL_FIELD_MAX + 1)):
        if depths[key] > limit:
            return [f"the RL engine needs {depths[key]} {what}, more than its 16-bit descriptor fields address "
                    f"({limit}): choose larger rl.tm / rl.tn, a smaller rl.batch or retrain fewer layers"]
    return []


def check_design(network: Network, design: Design, board: Board, prediction: Any = None) -> None:
    """Raise one DesignError naming every problem `design_problems` finds."""
    problems = design_problems(network, design, board, prediction)
    if problems:
        raise DesignError(f"the design cannot be built for {network.name} on {board.name}: {'; '.join(problems)}; "
                          "change the design accordingly (or re-run 'dtlgen dse' for this board)")


def network_fingerprint(network: Network) -> str:
    """A hash of the network's structure (layers, ops, shapes, split, which convs are seeded and of what
    kind, which layers are pruned), not of its weights: a design is made for a structure, and re-trained weights, another weight
    seed or a head started from a seed do not change it."""
    layers = []
    for layer in network.layers:
        d = {k: v for k, v in layer.to_dict().items() if k not in ("module_path", "params", "init_seed", "sparsity")}
        d["pruned"] = layer.mask is not None  # (its sparsity depends on the weights)
        if "seed" in d:
            d["seed"] = {k: v for k, v in d["seed"].items() if k != "seed"}
        layers.append(d)
    text = json.dumps({"input_shape": list(network.input_shape), "layers": layers}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_design_matches(network: Network, design: Design, source: str) -> None:
    """Refuse a design made for another network (its model name and structure fingerprint, when the
    design records them) or whose per-layer section names layers this network does not have."""
    if design.model is not None:
        if design.model != network.name:
            raise DesignError(f"{source} was made for {design.model}, not {network.name}; run "
                              f"'dtlgen dse {network.name} --board ...' for a design of this model")
        if design.network not in (None, network_fingerprint(network)):
            raise DesignError(f"{source} was made for a {network.name} with other layers, another split, other "
                              "seeded convs or other pruning (its network fingerprint differs); give the options the "
                              "DSE had (--split/--retrain-last, --seeded, --prune ...) or re-run the DSE for this model")
    if isinstance(design.fe.gen, tuple):
        from dtlgen.perf.fe import generable_convs

        generable = generable_convs(network)
        other = [name for name in design.fe.gen if name not in generable]
        if other:
            raise DesignError(f"{source}: fe.gen names '{other[0]}', which is not a seeded dense ±1 conv of "
                              f"{network.name} ({', '.join(generable) or 'it has none'}); list only those, or give "
                              "1 (all) or 0 (none)")
    from dtlgen.quant.quantize import check_overrides

    check_overrides(network, design.overrides, f"{source}: overrides")
    unknown = sorted(set(design.per_layer) - {layer.name for layer in network.layers})
    if unknown:
        raise DesignError(f"{source}: per_layer names layers {network.name} does not have ({', '.join(unknown[:3])}); "
                          "it was made for another model: re-run the DSE for this one")
