"""Bytes to send a model whose frozen convs are seeded (issue 18, ReFrame), against the hybrid model.

For each zoo model: the model as the zoo builds it (stored frozen weights at fe.w_bits, retrainable
layers at rl.bits: `dtlgen.quant.metrics.model_size_bytes`) and the same model with every frozen conv
seeded (`dtlgen.model.seeded.seed_convs`: the seeds, the convs' 16-bit scales and 32-bit biases, every
other tensor as stored: `transmitted_bytes`). The bytes depend on the architecture and the bit widths
only, so the scales are left untrained; accuracy is the demo's (`dtlgen demo --seeded`). The last
column also starts the retrainable layers from values drawn from the seed (`dtlgen.model.seeded.seed_head`,
in the formats their own values quantise to), so they are sent as the seed too, as `dtlgen demo --seeded` does.

Run: python benchmarks/seeded_models.py [--models digits_cnn resnet18_cifar vgg16_cifar] [--w-bits 8]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
from rich.console import Console
from rich.table import Table

from seeded_fe import networks
from dtlgen.model.seeded import seed_head
from dtlgen.quant.metrics import model_size_bytes, retrainable_bytes, transmitted_bytes
from dtlgen.quant.quantize import PrecisionConfig, quantize

MODELS = ("digits_cnn", "resnet18_cifar", "vgg16_cifar", "mobilenet_v1_cifar")


def measure(name: str, w_bits: int) -> dict:
    precision = PrecisionConfig(w_bits=w_bits)
    stored_net, seeded_net = networks(name)
    calib = np.random.default_rng(0).standard_normal((2, *stored_net.input_shape))
    stored, seeded = (quantize(network, calib, precision) for network in (stored_net, seeded_net))
    hybrid = model_size_bytes(stored)["hybrid"]
    sent = transmitted_bytes(seeded)
    head = retrainable_bytes(stored)
    fracs = {layer.name: seeded.layers[layer.name].w_fmt.frac for layer in seeded.rl_layers if layer.has_weights}
    started = quantize(seed_head(seeded.network, fracs, 1), calib, precision,
                       overrides={name: {"w_frac": frac} for name, frac in fracs.items()})
    with_head = transmitted_bytes(started)
    return {"model": name, "seeded_layers": sum(layer.seed is not None for layer in seeded.network.layers),
            "seeded_weights": int(sum(layer.weight.size for layer in seeded.network.layers if layer.seed is not None)),
            "hybrid": hybrid, "seeds": sent["seeds"], "learnable": sent["learnable"], "total": sent["total"],
            "reduction": 1 - sent["total"] / hybrid, "head": head,
            "head_seeded_total": with_head["total"], "head_seeded_reduction": 1 - with_head["total"] / hybrid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--w-bits", type=int, default=8, help="the FE's stored weight width (default 8)")
    args = parser.parse_args()
    table = Table(title=f"Bytes to send a model: hybrid (FE w{args.w_bits}, RL 16-bit) vs seeded frozen convs (±1)",
                  caption=f"parameter counts x stored bit widths (dtlgen.quant.metrics); {platform.machine()}")
    for col in ("model", "seeded convs", "seeded weights", "hybrid bytes", "seeded: seeds + learnable bytes",
                "reduction", "retrainable layers' bytes", "head from the seed too: bytes, reduction"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in args.models:
        r = measure(name, args.w_bits)
        table.add_row(name, str(r["seeded_layers"]), f"{r['seeded_weights']:,}", f"{r['hybrid']:,}",
                      f"{r['seeds']:,} + {r['learnable']:,} = {r['total']:,}", f"{100 * r['reduction']:.1f} %",
                      f"{r['head']:,}", f"{r['head_seeded_total']:,}, {100 * r['head_seeded_reduction']:.1f} %")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
