"""Planning the RL engine's program: where a quantised network's retrainable layers go on the engine.

`plan_rl` lays the retrainable layers of a quantised network out on an RL engine (RLConfig) and a
memory bus: weight tiles and bias rows in the parameter banks, every layer's input and the last
output in the activation stash (A), every layer's output gradient in the gradient stash (G), and
the DRAM buffers the host exchanges with the engine. It returns the layout record
(`dtlgen.host.rl_program.RLLayout`); encoding descriptors and images from a layout is the host's
runtime half (`dtlgen.host.rl_program`), which must not need this module, the perf model or the
network. `_check_ranges` refuses a layout whose values do not fit the descriptor's fields
(`dtlgen.isa.rl`: 16-bit counts and stash addresses, 32-bit DRAM addresses and beat counts) or
whose shifts the engine's arithmetic does not take (`dtlgen.isa.rl.shift_problems`, which the
quantisation checks overrides against first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from dtlgen.errors import DesignError, UnsupportedLayerError
from dtlgen.host.rl_program import (ACTIVATIONS, PERF_BASE, RLLayerPlan, RLLayout, dram_map, mask_plane_bytes,
                                    params_image_bytes)
from dtlgen.isa import rl as isa_rl
from dtlgen.isa.params import RLParams
from dtlgen.isa.rl import VALUE_BYTES
from dtlgen.perf.rl import GemmLayer, RLConfig, gemm_of, stash_lanes
from dtlgen.quant import fixed
from dtlgen.quant.quantize import SHIFT_NAMES, QuantizedNetwork, rl_shifts

FIELD_MAX = isa_rl.FIELD_MAX  # the packed descriptor fields are 16 bits
ADDRESS_SPACE = 1 << 32  # DRAM addresses and transfer lengths (w6, w11) are 32 bits


def check_rl_chain(qnet: QuantizedNetwork) -> list[tuple[Any, GemmLayer, dict[str, int]]]:
    """The retrainable layers the RL engine can run: a chain of linear and dense conv layers (K×K convs as
    windowed GEMMs; one whose input gradient is needed, stride 1) and max-pools, the first of them trained, a flatten of a map
    only before a linear layer (which then runs as a window over the whole map): (layer, its GEMM, its window)
    of each (`dtlgen.perf.rl.gemm_of`). Raises UnsupportedLayerError naming the layer."""
    gemm_layers = []
    previous = None
    for layer in qnet.rl_layers:
        if previous is not None and list(layer.inputs) != [previous.name]:
            raise UnsupportedLayerError(f"layer '{layer.name}' does not take the previous retrainable layer "
                                        f"'{previous.name}' as its only input; the RL engine trains a chain of layers")
        if previous is not None and tuple(layer.in_shape) != tuple(previous.out_shape):
            raise UnsupportedLayerError(f"layer '{layer.name}': its input shape {tuple(layer.in_shape)} is not the "
                                        f"output shape {tuple(previous.out_shape)} of '{previous.name}' before it")
        if layer.op == "flatten" and tuple(layer.out_shape) != (int(np.prod(layer.in_shape)),):
            raise UnsupportedLayerError(f"layer '{layer.name}': a flatten of {tuple(layer.in_shape)} must give "
                                        f"({int(np.prod(layer.in_shape))},), not {tuple(layer.out_shape)}")
        if layer.op == "flatten":
            in_shape = layer.in_shape
            after = [other for other in qnet.rl_layers if layer.name in other.inputs]
            if previous is not None and len(in_shape) == 3 and in_shape[1] * in_shape[2] > 1 and (
                    not after or after[0].op != "linear"):
                raise UnsupportedLayerError(f"layer '{layer.name}': a flatten of a {in_shape[1]}x{in_shape[2]} map "
                                            "ends the retrainable layers or feeds no linear layer, which the RL engine "
                                            "cannot train through; move the split after it")
        else:
            gemm, window = gemm_of(qnet.network, layer)
            if not gemm_layers and not gemm.trained:
                raise UnsupportedLayerError(f"layer '{layer.name}', the first the RL engine runs, is not trained; put "
                                            "the split at the first trained layer")
            if gemm_layers and window and window["stride"] != 1 and not gemm.pool:
                raise UnsupportedLayerError(f"layer '{layer.name}': the RL engine passes gradients through stride-1 "
                                            "convs only (BWD_DATA of a strided conv is not built); move the split after it")
            gemm_layers.append((layer, gemm, window))
        previous = layer
    if not gemm_layers:
        raise UnsupportedLayerError("the network has no retrainable linear or conv layer for the RL engine; "
                                    "choose a split before its last linear layer")
    return gemm_layers


def plan_rl(qnet: QuantizedNetwork, cfg: RLConfig, bus_bytes: int) -> RLLayout:
    """Lay out the retrainable layers on the RL engine; DesignError / UnsupportedLayerError on what cannot run."""
    if cfg.bits > 16:
        raise DesignError(f"rl.bits={cfg.bits}: the RL engine RTL stores 16-bit values; choose rl.bits <= 16")
    if qnet.precision.rl_bits != cfg.bits:
        raise DesignError(f"the network was quantised with rl_bits={qnet.precision.rl_bits} but the RL engine has "
                          f"rl.bits={cfg.bits}; quantise with the design's precision (rl.bits)")
    if cfg.batch < 1:
        raise DesignError(f"rl.batch={cfg.batch}: a training step needs at least one sample; choose rl.batch >= 1")
    if bus_bytes < VALUE_BYTES or bus_bytes & (bus_bytes - 1):
        raise DesignError(f"memory bus of {bus_bytes} bytes: the RL engine needs a power of two of at least 2 bytes")
    gemm_layers = check_rl_chain(qnet)
    acc_bits = max(cfg.acc_bits, qnet.rl_acc_bits())
    lanes = stash_lanes(cfg.tm, cfg.tn, bus_bytes)
    words = lambda cols: -(-cols // lanes)  # noqa: E731
    plans = []
    a_next = g_next = w_next = b_next = 0
    feature_shape = tuple(gemm_layers[0][0].in_shape)
    previous_gy = -1
    for idx, (layer, gemm, window) in enumerate(gemm_layers):
        lq = qnet.layers[layer.name]
        m, n, positions, taps = gemm.m, gemm.n, gemm.positions, gemm.taps
        in_rows = cfg.batch * gemm.rows_in
        rows = cfg.batch * positions
        mt, nt, nta = -(-m // cfg.tm), -(-n // cfg.tn), -(-(n + 1) // cfg.tn)
        if gemm.pool:  # no weights, no bias rows
            mt = nta = 0
        xa = a_next
        ya = xa + in_rows * words(n)
        a_next = ya
        gy = g_next
        g_next = gy + rows * words(m)
        producer, in_fmt, into = None, None, None
        if idx > 0:  # the previous GEMM layer (through a flatten)
            producer = qnet.network.layer(layer.inputs[0])
            if producer.op == "flatten":
                producer = qnet.network.layer(producer.inputs[0])
            in_fmt = qnet.layers[producer.name].out_fmt
            into = qnet.layers[layer.inputs[0]].grad_fmt
        six = lambda act, fmt: int(fixed.to_fixed(6.0, fmt)) if act == "relu6" else 0  # noqa: E731
        plans.append(RLLayerPlan(
            name=layer.name, index=qnet.network.index(layer.name), m=m, n=n, positions=positions, mt=mt, nt=nt,
            nta=nta, pitch_n=words(n), pitch_m=words(m), xa=xa, ya=ya, gy=gy, gx=previous_gy if idx > 0 else -1,
            wbase=w_next, bbase=b_next, act=ACTIVATIONS[layer.activation], six=six(layer.activation, lq.out_fmt),
            in_act=ACTIVATIONS[producer.activation] if producer else 0,
            in_six=six(producer.activation, in_fmt) if producer else 0,
            **(dict.fromkeys(SHIFT_NAMES, 0) if gemm.pool else rl_shifts(lq, into)), **window, trained=gemm.trained,
            pool=gemm.pool))
        previous_gy = gy
        w_next += mt * taps * nt
        b_next += mt
    # BWD_DATA of layer k writes the gradient of layer k-1's output: gx of layer k is gy of layer k-1.
    plans = [p if i == 0 else replace(p, gx=plans[i - 1].gy) for i, p in enumerate(plans)]
    a_depth = a_next + cfg.batch * plans[-1].positions * plans[-1].pitch_m
    # the second feature region: step n + 1's features load into it while step n's UPDATEs read the first
    feat_xa_alt = a_depth
    a_depth += cfg.batch * plans[0].in_positions * plans[0].pitch_n
    last = plans[-1]
    value_row = lambda cols: words(cols) * lanes * VALUE_BYTES  # noqa: E731
    has_mask = any(layer.mask is not None for layer in qnet.rl_layers)  # a pruned network: masks on chip (LOAD_M)
    dram = dram_map(len(plans), cfg.batch * plans[0].in_positions * value_row(plans[0].n),
                    cfg.batch * last.positions * value_row(last.m),
                    params_image_bytes(cfg.tm, cfg.tn, bus_bytes, w_next, b_next),
                    mask_plane_bytes(cfg.tm, cfg.tn, bus_bytes, w_next) if has_mask else 0)
    engine = RLParams(tm=cfg.tm, tn=cfg.tn, bits=cfg.bits, acc_bits=acc_bits, bus_bytes=bus_bytes, lanes=lanes,
                      a_depth=max(2, a_depth), g_depth=max(2, g_next), w_depth=max(2, w_next), b_depth=max(2, b_next),
                      has_mask=int(has_mask))
    layout = RLLayout(
        engine=engine, batch=cfg.batch, layers=tuple(plans), logit_frac=qnet.layers[last.name].out_fmt.frac,
        grad_bits=qnet.layers[last.name].grad_fmt.bits, grad_frac=qnet.layers[last.name].grad_fmt.frac,
        feature_shape=feature_shape, feat_xa_alt=feat_xa_alt, **dram)
    _check_ranges(layout)
    return layout


def _check_ranges(layout: RLLayout) -> None:
    """Shifts fit the engine's arithmetic (a WIDE = acc_bits + 32 datapath); every descriptor value
    fits its field. Transfers have no length limit of their own: the engine splits a LOAD into
    65535-beat requests, and its 32-bit beat count and addresses cover the whole DRAM map."""
    for p in layout.layers:
        problems = isa_rl.shift_problems({name: getattr(p, name) for name in SHIFT_NAMES}, layout.engine.acc_bits)
        if problems:
            what, value, lo, hi = problems[0]
            limit = f"limit of {hi}" if lo is None else f"range {lo}..{hi}"
            raise DesignError(f"layer '{p.name}': {what} {value} is outside the RL engine's {limit}; re-calibrate "
                              "with a different rl.bits")
    slots = PERF_BASE["backward"] - PERF_BASE["forward"]  # perf counters of one descriptor list
    if 2 * len(layout.layers) + 1 > slots:
        raise DesignError(f"{len(layout.layers)} retrainable layers make a backward list of "
                          f"{2 * len(layout.layers) + 1} descriptors; the RL engine counts the cycles of at most "
                          f"{slots} a list: retrain at most {(slots - 1) // 2} layers")
    smaller_batch = "use a smaller rl.batch or retrain fewer layers"
    fewer_tiles = "choose a larger rl.tm / rl.tn (fewer, larger tiles) or retrain fewer layers"
    for p in layout.layers:
        for what, value, fix in (
                (f"M={p.m}", p.m, "move the split so that the RL engine trains narrower layers"),
                (f"N={p.n}", p.n, "move the split so that the RL engine trains narrower layers"),
                (f"the n-tiles of [W | b] ({isa_rl.update_tiles(p.taps, p.nt, p.nta)})",
                 isa_rl.update_tiles(p.taps, p.nt, p.nta), "choose a larger rl.tn"),
                (f"the weight tiles per m-tile row ({p.taps * p.nt})", p.taps * p.nt, "choose a larger rl.tn"),
                (f"the m-tiles of the taps ({p.taps * p.mt})", p.taps * p.mt, "choose a larger rl.tm"),
                (f"the batch's GEMM rows (batch {layout.batch} x {max(p.positions, p.in_positions)} positions)",
                 layout.batch * max(p.positions, p.in_positions), "use a smaller rl.batch"),
                ("a window's row pitch / image step (stash words)",
                 max(p.wi * p.pitch_n, p.hi * p.wi * p.pitch_n, p.co * p.pitch_m, p.ro * p.co * p.pitch_m) if p.k else 0,
                 smaller_batch),
                ("an activation-stash word address", max(p.xa, p.ya, layout.feat_xa_alt), smaller_batch),
                ("a gradient-stash word address", max(p.gy, p.gx), smaller_batch)):
            if value > FIELD_MAX:
                raise DesignError(f"layer '{p.name}': {what} does not fit the RL descriptor's 16-bit field "
                                  f"(at most {FIELD_MAX}); {fix}")
    # (the count bounds every FWD / BWD_DATA / UPDATE descriptor's first tile and row as well)
    for what, value in (("weight tiles", layout.w_depth_used), ("bias rows", layout.b_depth_used)):
        if value > FIELD_MAX:
            raise DesignError(f"the RL parameter image has {value} {what}, more than the {FIELD_MAX} that the "
                              f"LOAD_P / STORE_P descriptor's 16-bit count holds; {fewer_tiles}")
    end = max(layout.params_addr + layout.params_bytes, layout.mask_addr + layout.mask_bytes)
    if end > ADDRESS_SPACE:
        raise DesignError(f"the RL engine's DRAM map (descriptors, features, logits, dY and the "
                          f"{layout.params_bytes}-byte parameter image and any pruning-mask plane) ends at byte {end}, beyond its 32-bit "
                          f"addresses; {smaller_batch}")
