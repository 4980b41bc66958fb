"""The RL engine's program: on-chip layout, DRAM map, descriptor encoding and parameter images.

`plan_rl` lays the retrainable layers of a quantised network out on an RL engine (RLConfig) and a
memory bus: weight tiles and bias rows in the parameter banks, every layer's input and the last
output in the activation stash (A), every layer's output gradient in the gradient stash (G), and
the DRAM buffers the host exchanges with the engine. The descriptor lists of a training step
(`forward_list`, `backward_list`) and the parameter transfers are encoded here, once, for the
host loop (`dtlgen.host.rl_host`), the simulation and the board driver alike.

Descriptor (128 bytes, 32 little-endian words; rl_engine.sv decodes the same fields):
  w0 mode | act<<4 | six<<16      w1 M | N<<16          w2 rows G | seed<<16
  w3 xa | ya<<16 (A stash words)  w4 gy | gx<<16 (G stash words)    w5 weight tile | bias row<<16
  w6 DRAM address                 w7 shifts s0 | s1<<8 | s2<<16 | s3<<24 (signed bytes)
  w8 Mt | Nt<<16                  w9 Nt' | pitch_n<<16  w10 pitch_m     w11 beats (LOAD / STORE)
  w16..23 A^(N+1), w24..31 A^(TM(N+1)): LFSR jump matrices, row r in half-word r
The packed fields are 16 bits; w6 and w11 are 32. The engine issues a LOAD of any length as a chain
of read requests of at most 65535 beats, so a transfer is bounded by the 32-bit DRAM map, not by
one burst; `_check_ranges` refuses a layout whose values do not fit their fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from dtlgen.errors import DesignError, UnsupportedLayerError
from dtlgen.isa import rl as isa_rl
from dtlgen.isa.params import RLParams
from dtlgen.perf.rl import DESCRIPTOR_BYTES, VALUE_BYTES, RLConfig, stash_lanes
from dtlgen.quant import fixed
from dtlgen.quant.quantize import QuantizedNetwork, rl_gemm_shape

MODES = isa_rl.MODES
ACTIVATIONS = isa_rl.ACTIVATION_CODES
PERF_BASE = {"forward": 0, "backward": 64, "params": 128}  # perf-counter index of each list's first descriptor
FIELD_MAX = isa_rl.FIELD_MAX  # the packed descriptor fields are 16 bits
ADDRESS_SPACE = 1 << 32  # DRAM addresses and transfer lengths (w6, w11) are 32 bits


@dataclass(frozen=True)
class RLLayerPlan:
    name: str
    index: int  # position in the network (seeds the UPDATE's LFSR)
    m: int
    n: int
    positions: int
    mt: int
    nt: int
    nta: int  # n-tiles of [W | b]
    pitch_n: int  # stash words per row of an N-wide matrix
    pitch_m: int
    xa: int  # A stash: this layer's input
    ya: int  # A stash: this layer's output (the next layer's input)
    gy: int  # G stash: gradient w.r.t. this layer's output
    gx: int  # G stash: gradient w.r.t. this layer's input (the previous layer's gy); -1 for the first
    wbase: int
    bbase: int
    act: int
    six: int
    in_act: int  # the producer's activation (BWD_DATA masks dX with it)
    in_six: int
    out_shift: int
    bias_align: int
    dx_shift: int
    dw_shift: int
    db_shift: int
    w_step_frac: int  # dw_frac - w_frac: the UPDATE's SR shift is lr_shift + this
    b_step_frac: int


@dataclass(frozen=True)
class RLLayout:
    """The RL engine's build (`engine`: array, widths, stash lanes, bank depths), the layers' places in
    its banks and stashes, and its DRAM map. rl_layout.json holds it as one flat object."""

    engine: RLParams
    batch: int
    layers: tuple[RLLayerPlan, ...]
    desc_addr: int
    feat_addr: int
    logit_addr: int
    dy_addr: int
    params_addr: int
    memory_bytes: int
    logit_frac: int
    grad_bits: int
    grad_frac: int
    feature_shape: tuple[int, ...]  # one sample's FE output (C, H, W) or (F,)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def vals(self) -> int:
        return self.engine.bus_bytes // VALUE_BYTES

    @property
    def tile_beats(self) -> int:
        return -(-self.engine.tm * self.engine.tn // self.vals)

    @property
    def brow_beats(self) -> int:
        return -(-self.engine.tm // self.vals)

    @property
    def params_bytes(self) -> int:
        return (self.w_depth_used * self.tile_beats + self.b_depth_used * self.brow_beats) * self.engine.bus_bytes

    @property
    def w_depth_used(self) -> int:
        return sum(l.mt * l.nt for l in self.layers)

    @property
    def b_depth_used(self) -> int:
        return sum(l.mt for l in self.layers)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("engine"))
        d["layers"] = [asdict(layer) for layer in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RLLayout":
        d = dict(d)
        d["engine"] = RLParams(**{f.name: d.pop(f.name) for f in fields(RLParams)})
        d["layers"] = tuple(RLLayerPlan(**layer) for layer in d["layers"])
        d["feature_shape"] = tuple(d["feature_shape"])
        return cls(**d)


def _pow2_at_least(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


def _align(value: int, to: int = 64) -> int:
    return -(-value // to) * to


def check_rl_chain(qnet: QuantizedNetwork) -> list:
    """The retrainable layers the RL engine can run: a chain of linear / 1x1 conv layers, flatten only
    where it does not reorder rows (a 1x1 map). Raises UnsupportedLayerError naming the layer."""
    gemm_layers = []
    previous = None
    for layer in qnet.rl_layers:
        if previous is not None and list(layer.inputs) != [previous.name]:
            raise UnsupportedLayerError(f"layer '{layer.name}' does not take the previous retrainable layer "
                                        f"'{previous.name}' as its only input; the RL engine trains a chain of layers")
        if layer.op == "flatten":
            in_shape = layer.in_shape
            if previous is not None and len(in_shape) == 3 and in_shape[1] * in_shape[2] > 1:
                raise UnsupportedLayerError(f"layer '{layer.name}': a flatten of a {in_shape[1]}x{in_shape[2]} map between "
                                            "retrainable layers reorders rows, which the RL engine cannot train "
                                            "through; move the split after it")
        else:
            rl_gemm_shape(layer)
            gemm_layers.append(layer)
        previous = layer
    if not gemm_layers:
        raise UnsupportedLayerError("the network has no retrainable linear or 1x1 conv layer for the RL engine; "
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
    feature_shape = tuple(gemm_layers[0].in_shape)
    previous_gy = -1
    for idx, layer in enumerate(gemm_layers):
        lq = qnet.layers[layer.name]
        m, n, positions = rl_gemm_shape(layer)
        rows = cfg.batch * positions
        mt, nt, nta = -(-m // cfg.tm), -(-n // cfg.tn), -(-(n + 1) // cfg.tn)
        xa = a_next
        ya = xa + rows * words(n)
        a_next = ya
        gy = g_next
        g_next = gy + rows * words(m)
        producer, in_fmt, into = None, None, None
        if idx > 0:  # the previous GEMM layer (through a flatten of a 1x1 map)
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
            out_shift=lq.out_shift, bias_align=lq.acc_frac - lq.b_fmt.frac,
            dx_shift=lq.w_fmt.frac + lq.grad_fmt.frac - into.frac if into is not None else 0,
            dw_shift=lq.grad_fmt.frac + lq.in_fracs[0] - lq.dw_fmt.frac, db_shift=lq.grad_fmt.frac - lq.db_fmt.frac,
            w_step_frac=lq.dw_fmt.frac - lq.w_fmt.frac, b_step_frac=lq.db_fmt.frac - lq.b_fmt.frac))
        previous_gy = gy
        w_next += mt * nt
        b_next += mt
    # BWD_DATA of layer k writes the gradient of layer k-1's output: gx of layer k is gy of layer k-1.
    plans = [p if i == 0 else replace(p, gx=plans[i - 1].gy) for i, p in enumerate(plans)]
    a_depth = a_next + cfg.batch * plans[-1].positions * plans[-1].pitch_m
    last = plans[-1]
    value_row = lambda cols: words(cols) * lanes * VALUE_BYTES  # noqa: E731
    desc_addr = 0
    n_desc = 3 * len(plans) + 4
    feat_addr = _align(desc_addr + n_desc * DESCRIPTOR_BYTES)
    logit_addr = _align(feat_addr + cfg.batch * plans[0].positions * value_row(plans[0].n))
    dy_addr = _align(logit_addr + cfg.batch * last.positions * value_row(last.m))
    params_addr = _align(dy_addr + cfg.batch * last.positions * value_row(last.m))
    engine = RLParams(tm=cfg.tm, tn=cfg.tn, bits=cfg.bits, acc_bits=acc_bits, bus_bytes=bus_bytes, lanes=lanes,
                      a_depth=max(2, a_depth), g_depth=max(2, g_next), w_depth=max(2, w_next), b_depth=max(2, b_next))
    layout = RLLayout(
        engine=engine, batch=cfg.batch, layers=tuple(plans), desc_addr=desc_addr, feat_addr=feat_addr,
        logit_addr=logit_addr, dy_addr=dy_addr, params_addr=params_addr, memory_bytes=0, logit_frac=qnet.layers[last.name].out_fmt.frac,
        grad_bits=qnet.layers[last.name].grad_fmt.bits, grad_frac=qnet.layers[last.name].grad_fmt.frac,
        feature_shape=feature_shape)
    end = params_addr + layout.params_bytes
    layout = replace(layout, memory_bytes=_pow2_at_least(max(end, 1 << 12)))
    _check_ranges(layout)
    return layout


def _check_ranges(layout: RLLayout) -> None:
    """Shifts fit the engine's arithmetic (a WIDE = acc_bits + 32 datapath); every descriptor value
    fits its field. Transfers have no length limit of their own: the engine splits a LOAD into
    65535-beat requests, and its 32-bit beat count and addresses cover the whole DRAM map."""
    wide = layout.engine.acc_bits + 32
    for p in layout.layers:
        for name, value, lo, hi in (("output requantisation", p.out_shift, -31, 127),
                                    ("bias alignment", p.bias_align, 0, 31),
                                    ("BWD_DATA requantisation", p.dx_shift, -31, 127),
                                    ("dW requantisation", p.dw_shift, -31, 127),
                                    ("db requantisation", p.db_shift, -31, 127)):
            if not lo <= value <= hi:
                raise DesignError(f"layer '{p.name}': {name} shift {value} is outside the RL engine's range "
                                  f"[{lo}, {hi}]; re-calibrate with a different rl.bits")
        if p.w_step_frac + 30 > wide - 1 or p.b_step_frac + 30 > wide - 1:
            raise DesignError(f"layer '{p.name}': update shifts exceed the {wide}-bit update datapath")
    smaller_batch = "use a smaller rl.batch or retrain fewer layers"
    fewer_tiles = "choose a larger rl.tm / rl.tn (fewer, larger tiles) or retrain fewer layers"
    for p in layout.layers:
        for what, value, fix in (
                (f"M={p.m}", p.m, "move the split so that the RL engine trains narrower layers"),
                (f"N={p.n}", p.n, "move the split so that the RL engine trains narrower layers"),
                (f"the n-tiles of [W | b] ({p.nta})", p.nta, "choose a larger rl.tn"),
                (f"the batch's GEMM rows (batch {layout.batch} x {p.positions} positions)",
                 layout.batch * p.positions, "use a smaller rl.batch"),
                ("an activation-stash word address", max(p.xa, p.ya), smaller_batch),
                ("a gradient-stash word address", max(p.gy, p.gx), smaller_batch)):
            if value > FIELD_MAX:
                raise DesignError(f"layer '{p.name}': {what} does not fit the RL descriptor's 16-bit field "
                                  f"(at most {FIELD_MAX}); {fix}")
    # (the count bounds every FWD / BWD_DATA / UPDATE descriptor's first tile and row as well)
    for what, value in (("weight tiles", layout.w_depth_used), ("bias rows", layout.b_depth_used)):
        if value > FIELD_MAX:
            raise DesignError(f"the RL parameter image has {value} {what}, more than the {FIELD_MAX} that the "
                              f"LOAD_P / STORE_P descriptor's 16-bit count holds; {fewer_tiles}")
    end = layout.params_addr + layout.params_bytes
    if end > ADDRESS_SPACE:
        raise DesignError(f"the RL engine's DRAM map (descriptors, features, logits, dY and the "
                          f"{layout.params_bytes}-byte parameter image) ends at byte {end}, beyond its 32-bit "
                          f"addresses; {smaller_batch}")


# --- descriptors ----------------------------------------------------------------------------------
def encode(mode: str, **fields) -> bytes:
    """One descriptor (`dtlgen.isa.rl`, the spec of its fields)."""
    return isa_rl.encode(mode, **fields)


def _transfer_beats(layout: RLLayout, rows: int, cols: int) -> int:
    lanes = layout.engine.lanes
    return rows * -(-cols // lanes) * lanes * VALUE_BYTES // layout.engine.bus_bytes


def forward_list(layout: RLLayout, samples: int) -> bytes:
    """LOAD the batch's features, FWD every layer, STORE the logits."""
    first, last = layout.layers[0], layout.layers[-1]
    out = [encode("LOAD_A", n=first.n, rows=samples * first.positions, xa=first.xa, dram=layout.feat_addr,
                  beats=_transfer_beats(layout, samples * first.positions, first.n))]
    for p in layout.layers:
        out.append(encode("FWD", act=p.act, six=p.six, m=p.m, n=p.n, rows=samples * p.positions, xa=p.xa, ya=p.ya,
                          wbase=p.wbase, bbase=p.bbase, shifts=(p.out_shift, p.bias_align, 0, 0), mt=p.mt,
                          nt=p.nt, nta=p.nta, pitch_n=p.pitch_n, pitch_m=p.pitch_m))
    out.append(encode("STORE_A", n=last.m, rows=samples * last.positions, ya=last.ya, dram=layout.logit_addr,
                      beats=_transfer_beats(layout, samples * last.positions, last.m)))
    return b"".join(out)


def backward_list(layout: RLLayout, samples: int, step: int, lr_shift: int) -> bytes:
    """LOAD dY, then per layer from the last: BWD_DATA (not for the first), UPDATE."""
    last = layout.layers[-1]
    out = [encode("LOAD_G", n=last.m, rows=samples * last.positions, gy=last.gy, dram=layout.dy_addr,
                  beats=_transfer_beats(layout, samples * last.positions, last.m))]
    for k in range(len(layout.layers) - 1, -1, -1):
        p = layout.layers[k]
        rows = samples * p.positions
        if k > 0:
            out.append(encode("BWD_DATA", act=p.in_act, six=p.in_six, m=p.m, n=p.n, rows=rows, xa=p.xa, gy=p.gy,
                              gx=p.gx, wbase=p.wbase, shifts=(p.dx_shift, 0, 0, 0), mt=p.mt, nt=p.nt, nta=p.nta,
                              pitch_n=p.pitch_n, pitch_m=p.pitch_m))
        w_sr, b_sr = lr_shift + p.w_step_frac, lr_shift + p.b_step_frac
        for what, value in (("weight", w_sr), ("bias", b_sr)):
            if not -31 <= value <= 127:
                raise DesignError(f"layer '{p.name}': the {what} update shift {value} (lr_shift {lr_shift}) is "
                                  "outside the RL engine's range [-31, 127]; choose another lr_shift")
        seed = fixed.lfsr_seed(step, p.index)
        out.append(encode("UPDATE", m=p.m, n=p.n, rows=rows, seed=seed, xa=p.xa, gy=p.gy, wbase=p.wbase,
                          bbase=p.bbase, shifts=(p.dw_shift, p.db_shift, w_sr, b_sr), mt=p.mt, nt=p.nt, nta=p.nta,
                          pitch_n=p.pitch_n, pitch_m=p.pitch_m, j_row=_jump_rows(p.n + 1),
                          j_blk=_jump_rows(layout.engine.tm * (p.n + 1))))
    return b"".join(out)


_JUMPS: dict[int, tuple[int, ...]] = {}


def _jump_rows(steps: int) -> tuple[int, ...]:
    if steps not in _JUMPS:
        _JUMPS[steps] = fixed.lfsr_jump_matrix(steps)
    return _JUMPS[steps]


def params_list(layout: RLLayout, mode: str) -> bytes:
    """LOAD_P or STORE_P of every weight tile and bias row."""
    return encode(mode, m=layout.b_depth_used, n=layout.w_depth_used, dram=layout.params_addr,
                  beats=layout.params_bytes // layout.engine.bus_bytes)


def step_descriptor_counts(layout: RLLayout) -> tuple[int, int]:
    return len(layout.layers) + 2, 2 * len(layout.layers)


# --- data images ----------------------------------------------------------------------------------
def matrix_bytes(layout: RLLayout, rows: np.ndarray) -> bytes:
    """A (G, F) integer matrix as the engine's DRAM rows: 16-bit values, row pitch of whole stash words."""
    g, f = rows.shape
    pitch = -(-f // layout.engine.lanes) * layout.engine.lanes
    padded = np.zeros((g, pitch), dtype="<i2")
    padded[:, :f] = rows
    return padded.tobytes()


def matrix_from_bytes(layout: RLLayout, data: bytes, rows: int, cols: int) -> np.ndarray:
    pitch = -(-cols // layout.engine.lanes) * layout.engine.lanes
    return np.frombuffer(data, dtype="<i2")[:rows * pitch].reshape(rows, pitch)[:, :cols].astype(np.int64)


def params_image(layout: RLLayout, state: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Weight tiles (i-major, padded to whole beats), then bias rows, for every layer in order."""
    tm, tn, vals = layout.engine.tm, layout.engine.tn, layout.vals
    tiles, brows = [], []
    for p in layout.layers:
        w, b = state[p.name]
        w = np.asarray(w).reshape(p.m, -1)
        wp = np.zeros((p.mt * tm, p.nt * tn), dtype=np.int64)
        wp[:p.m, :p.n] = w
        for t_m in range(p.mt):
            for t_n in range(p.nt):
                tile = np.zeros(layout.tile_beats * vals, dtype=np.int64)
                tile[:tm * tn] = wp[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn].reshape(-1)
                tiles.append(tile)
        bp = np.zeros(p.mt * tm, dtype=np.int64)
        bp[:p.m] = b
        for t_m in range(p.mt):
            row = np.zeros(layout.brow_beats * vals, dtype=np.int64)
            row[:tm] = bp[t_m * tm:(t_m + 1) * tm]
            brows.append(row)
    return np.concatenate(tiles + brows).astype("<i2").tobytes()


def params_from_image(layout: RLLayout, data: bytes,
                      shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inverse of `params_image`; `shapes` gives each layer's weight shape."""
    tm, tn, vals = layout.engine.tm, layout.engine.tn, layout.vals
    values = np.frombuffer(data, dtype="<i2").astype(np.int64)
    tile_len, brow_len = layout.tile_beats * vals, layout.brow_beats * vals
    tiles = values[:layout.w_depth_used * tile_len].reshape(-1, tile_len)
    brows = values[layout.w_depth_used * tile_len:][:layout.b_depth_used * brow_len].reshape(-1, brow_len)
    out = {}
    for p in layout.layers:
        wp = np.zeros((p.mt * tm, p.nt * tn), dtype=np.int64)
        for t_m in range(p.mt):
            for t_n in range(p.nt):
                wp[t_m * tm:(t_m + 1) * tm, t_n * tn:(t_n + 1) * tn] = \
                    tiles[p.wbase + t_m * p.nt + t_n][:tm * tn].reshape(tm, tn)
        b = np.concatenate([brows[p.bbase + t_m][:tm] for t_m in range(p.mt)])[:p.m]
        out[p.name] = (wp[:p.m, :p.n].reshape(shapes[p.name]), b)
    return out

