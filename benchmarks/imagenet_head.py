"""An ImageNet-layout network with a replaced 10-class head, re-trained on pynq-z2 end to end.

The user's transfer-learning set-up: torchvision's ResNet-18 (or MobileNet-V2) layout at 224x224,
its 1000-class head replaced by a 10-class one, everything before the head frozen. Through the
Python API (the same code as the CLI): explore the board, generate the project with the
re-training set, simulate the FE engine in RTL on one image (bit-exact, measured against predicted
cycles), then re-train the head on the RTL-simulated RL engine through the host loop over the
whole schedule (every epoch, the golden model replaying it bit for bit) and measure accuracy on
held-out images before and after, beside a float64 head trained on float features with the same
schedule.

Before the head sits a frozen standardisation of the pooled features (per channel minus the
re-training set's mean, times one power of two near 1 / their typical standard deviation), as a
linear probe usually has: a depthwise 1x1 conv the FE engine runs. Without it, plain SGD on the raw
ReLU features (mean 6, the head's first logits about 10) stays near chance for tens of epochs, in
float64 as on the device. A last row fits a logistic regression (scikit-learn, standardised
inputs) to the engine's own 8-bit features: what they hold, apart from what plain SGD on the device
makes of them.

Data and weights: no download is possible here, so the network carries the zoo's seeded random
weights (`dtlgen.model.zoo`: Kaiming-initialised, randomised BatchNorm), not ImageNet-trained ones,
and the 10-class task is scikit-learn's 8x8 digits scaled to 224x224 (each pixel a 28x28 block,
three channels). The figures show the flow at full size (1.8 G MACs an image for ResNet-18) and
how well a head re-trains on random features; they say nothing of ImageNet transfer. The FE
features come from the golden model (`fe="golden"`), which the RTL simulation of the FE holds
bit-exact on the project's image; the FE engine's C-simulation gives the same, at about 80 s an
image for ResNet-18 on this machine.

Run: python benchmarks/imagenet_head.py [--model resnet18_imagenet|mobilenet_v2_imagenet] [--train 320]
                                        [--test 200] [--epochs 10] [--lr-shift 7] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import dtlgen
from dtlgen.quant.reference import float_forward


def digits_224(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits (shuffled, seeded) at 3x224x224 in [-1, 1], and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(seed).permutation(len(data.target))[:count]
    small = data.images[order] / 8.0 - 1.0  # 0..16 -> -1..1
    big = np.kron(small, np.ones((28, 28)))[:, None]  # 8x8 -> 224x224, each pixel a 28x28 block
    return np.repeat(big, 3, axis=1).astype(np.float32), data.target[order]


def with_standardisation(module, x: np.ndarray):
    """`module` with its global average pool followed by a frozen standardisation of the pooled
    features on `x`: a depthwise 1x1 conv, weight g and bias -mean * g per channel, g the power of
    two nearest 1 / the channels' median standard deviation."""
    import torch
    from torch import nn

    pooled = []
    hook = module.avgpool.register_forward_hook(lambda mod, args, out: pooled.append(out.flatten(1).double()))
    with torch.no_grad():
        for i in range(0, len(x), 8):
            module(torch.from_numpy(x[i:i + 8]))
    hook.remove()
    features = torch.cat(pooled)
    # one power-of-two gain for every channel, near 1 / the typical std: exact in any weight format
    # (per-channel gains 1/std span decades, and the layer's one weight format would round most to 0)
    mean = features.mean(0)
    gain = torch.full_like(mean, 2.0 ** -round(float(torch.log2(features.std(0).median()))))
    channels = features.shape[1]
    scale = nn.Conv2d(channels, channels, 1, groups=channels, bias=True)
    with torch.no_grad():
        scale.weight.copy_(gain.reshape(channels, 1, 1, 1))
        scale.bias.copy_(-mean * gain)
    module.avgpool = nn.Sequential(module.avgpool, scale)
    return module.eval()


def float_head(network, x_train, y_train, x_test, y_test, epochs: int, batch: int, lr: float, seed: int) -> float:
    """Test accuracy of a float64 softmax head (the network's last layer) trained with plain SGD on
    the float model's features, the schedule the device runs (a permutation per epoch, batch-summed
    gradient times lr)."""
    head = network.layers[-1]

    def features(x: np.ndarray) -> np.ndarray:  # 8 images at a time: every layer's float64 outputs are kept
        return np.concatenate([float_forward(network, x[i:i + 8])[head.inputs[0]].reshape(len(x[i:i + 8]), -1)
                               for i in range(0, len(x), 8)])

    f_train, f_test = features(x_train), features(x_test)
    w, b = np.array(head.weight, dtype=np.float64), np.array(head.bias, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        perm = rng.permutation(len(f_train))
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            logits = f_train[idx] @ w.T + b
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(idx)), y_train[idx]] -= 1.0
            w -= lr * p.T @ f_train[idx]
            b -= lr * p.sum(0)
    return float(np.mean((f_test @ w.T + b).argmax(1) == y_test))


def logistic_probe(f_train: np.ndarray, y_train: np.ndarray, f_test: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out accuracy of scikit-learn's logistic regression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    f_train, f_test = f_train.reshape(len(f_train), -1), f_test.reshape(len(f_test), -1)
    scaler = StandardScaler().fit(f_train)
    model = LogisticRegression(max_iter=3000).fit(scaler.transform(f_train), y_train)
    return float(model.score(scaler.transform(f_test), y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18_imagenet", choices=("resnet18_imagenet", "mobilenet_v2_imagenet"))
    parser.add_argument("--board", default="pynq-z2")
    parser.add_argument("--train", type=int, default=320, help="re-training images (default %(default)s)")
    parser.add_argument("--test", type=int, default=200, help="held-out images (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=10, help="re-training epochs (default %(default)s)")
    parser.add_argument("--lr-shift", type=int, default=9, help="learning rate 2^-N (default %(default)s)")
    parser.add_argument("--out", default=None, help="where the DSE and the project go (default: a temporary folder)")
    args = parser.parse_args()
    console = Console(width=200)
    timings: dict[str, float] = {}
    x, y = digits_224(args.train + args.test, seed=0)
    x_train, y_train, x_test, y_test = x[:args.train], y[:args.train], x[args.train:], y[args.train:]
    calib = x_train[:8]

    with tempfile.TemporaryDirectory(prefix="dtlgen-imagenet-") as scratch:
        out = Path(args.out) if args.out else Path(scratch)
        start = time.perf_counter()
        from dtlgen.model.zoo import ZOO

        module, shape, _ = ZOO[args.model]()
        network = dtlgen.load_model(with_standardisation(module, x_train), shape, retrain_last=1, name=args.model)
        design = dtlgen.explore(network, args.board, pop=16, gens=4, seed=1, calibration=calib, out=out / "dse",
                                force=True)
        timings["explore (NSGA-II, pop 16 x 4)"] = time.perf_counter() - start
        start = time.perf_counter()
        project = dtlgen.generate(network, design, out / "prj", calibration=calib, train=(x_train, y_train),
                                  force=True)
        timings["generate (golden FE features of the re-training set)"] = time.perf_counter() - start
        start = time.perf_counter()
        sim = project.simulate()
        timings["FE in RTL simulation, one image (Verilator build included)"] = time.perf_counter() - start
        start = time.perf_counter()
        before = float(np.mean(project.predict(x_test, fe="golden").argmax(1) == y_test))
        timings["held-out accuracy (golden FE, C-simulated RL forward)"] = time.perf_counter() - start
        start = time.perf_counter()
        history = project.retrain(x_train, y_train, epochs=args.epochs, engine="rtl", fe="golden",
                                  lr_shift=args.lr_shift)
        timings["re-training in RTL simulation, whole schedule (golden replay included)"] = time.perf_counter() - start
        after = float(np.mean(project.predict(x_test, fe="golden").argmax(1) == y_test))
        reference = float_head(network, x_train, y_train, x_test, y_test, args.epochs, project.rl.layout.batch,
                               2.0 ** -args.lr_shift, seed=1)
        probe = logistic_probe(project.features(x_train, fe="golden"), y_train, project.features(x_test, fe="golden"),
                               y_test)

    fe, rl, clock = design.fe, design.rl, sim["clock_mhz"]
    total = sim["totals"]["fe"]
    table = Table(title=f"{args.model} ({network.macs / 1e9:.2f} G MACs an image, {network.params / 1e6:.1f} M "
                        f"params), 10-class head re-trained on {args.board}", title_justify="left")
    table.add_column("figure", justify="left")
    table.add_column("value", justify="left")
    table.add_column("source", justify="left")
    rows = [
        ("design (the DSE's knee)", f"FE {fe.tm}x{fe.tn}, tiles {fe.tr}x{fe.tc}, w{fe.w_bits}/a{fe.a_bits}; RL "
                                    f"{rl.tm}x{rl.tn} {rl.bits}-bit, batch {rl.batch}; {clock:g} MHz",
         "NSGA-II on the analytical model; the clock a target (README, clock rule)"),
        ("FE, one image: bit-exact / measured vs predicted cycles",
         f"{'yes' if total['bit_exact'] else 'NO'} / {total['measured_cycles']:,} vs {total['predicted_cycles']:,} "
         f"({100 * total['rel_error']:+.2f} %), {total['measured_gops']:.2f} GOPs at {clock:g} MHz",
         "RTL simulation (Verilator) vs analytical model"),
        ("re-training: steps (epochs x batches) / bit-exact with the golden model",
         f"{history['steps']} ({args.epochs} x {-(-args.train // rl.batch)}) / "
         f"{'yes' if history['bit_exact'] else 'NO'}", "RTL simulation of the RL engine, golden replay"),
        ("re-training cycles: measured vs predicted (whole run)",
         f"{history['measured_cycles']:,} vs {history['predicted_cycles']:,} = "
         f"{history['measured_cycles'] / (clock * 1e3):.2f} ms at {clock:g} MHz",
         "RTL simulation (host's count) vs analytical model"),
        (f"held-out accuracy ({args.test} images): before / after re-training (lr 2^-{args.lr_shift})",
         f"{100 * before:.1f} % / {100 * after:.1f} %", "golden FE + C-simulated RL forward, RTL-re-trained weights"),
        ("float64 head, same schedule, on float features", f"{100 * reference:.1f} %", "numpy float64 reference"),
        ("logistic regression on the engine's features (standardised)", f"{100 * probe:.1f} %",
         "scikit-learn on golden-model FE outputs"),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print("Wall time: " + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".", highlight=False)
    console.print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. Weights: "
                  "the zoo's seeded random ones (no ImageNet weights here); task: digits scaled to 224x224.",
                  highlight=False)


if __name__ == "__main__":
    main()
