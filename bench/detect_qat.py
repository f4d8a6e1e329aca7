"""Quantization-aware training of a detector plan, one setting at a time: validation
mAP@0.5 of the fake-quant model (whose ``z`` equals the integer model's) before and after
``--epochs`` of fine-tuning, from one fp32 model trained once and cached.

    python bench/detect_qat.py examples/digits_detect.yaml --epochs 4 --batch 16

The fp32 model depends only on the layers' shapes, so plans that differ in precision
share ``--fp32`` (trained with the plan's ``quantize.epochs`` when the file is missing).
Sparsity: each layer's own, ``auto`` layers at ``--auto`` (the flow's base sparsity).
Prints one line a measurement; docs/detect.md has the figures.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnn_ip.plan import load_plan                                        # noqa: E402
from quant import detect, train                                           # noqa: E402
from quant.data import load_dataset                                       # noqa: E402
from quant.detect_pipeline import (CALIBRATION, HEAD_MBITS, fakequant_map, fp32_detections,  # noqa: E402
                                   teacher_outputs, training_loss)
from quant.model import FloatNet                                          # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--auto", type=float, default=0.5)
    parser.add_argument("--mbits", type=int, default=8)
    parser.add_argument("--distill", type=float, default=0.0,
                        help="weight of the distillation loss toward the fp32 model")
    parser.add_argument("--fp32", default="/tmp/cnn_ip-detect-fp32.pt")
    parser.add_argument("--save", help="write the fine-tuned fake-quant model's state here")
    args = parser.parse_args(argv)
    plan = load_plan(args.plan)
    specs, seed = plan.layers, plan.quantize.get("seed", 0)
    data = load_dataset(plan.dataset, size=plan.input_shape[1:])
    head = detect.make_head(specs, data, plan.detect["anchors"], seed)
    targets = detect.build_targets(head, data.train)
    score = fakequant_map(head)
    with train.deterministic(seed, 1):
        net = FloatNet(specs)
        if Path(args.fp32).exists():
            net.load_state_dict(torch.load(args.fp32))
        else:
            net = train.train_fp32(specs, data, epochs=plan.quantize.get("epochs", 25), seed=seed,
                                   progress=False, loss=training_loss(head, targets))
            torch.save(net.state_dict(), args.fp32)
        net.eval()
        fp32 = detect.mean_average_precision(fp32_detections(net, head, data.val), data.val)
        print(f"fp32 validation mAP@0.5 {fp32['map50']:.4f} (mAP@0.5:0.95 {fp32['map']:.4f})", flush=True)
        qnet = train.quantize_net(specs, net, train.activation_scales(net, data.train.x[:CALIBRATION]),
                                  mbits=args.mbits, head_mbits=HEAD_MBITS)
        for layer in qnet.weight_layers():
            sparsity = layer.spec.sparsity
            layer.set_sparsity(args.auto if sparsity == "auto" else sparsity)
        loss = training_loss(head, targets, teacher_outputs(net, data.train.x), args.distill)
        print(f"quantized, before fine-tuning: {score(qnet, data.val):.4f}", flush=True)
        started = time.process_time()
        train.finetune(qnet, data, epochs=args.epochs, seed=seed, lr=args.lr, batch=args.batch,
                       progress=False, loss=loss)
        cpu = time.process_time() - started
        if args.save:
            torch.save(qnet.state_dict(), args.save)
        z = train.fakequant_outputs(qnet, data.val.x).transpose(0, 2, 3, 1)
        result = detect.mean_average_precision(
            detect.decode(head, detect.real_outputs(z, qnet.head_scale())), data.val)
        print(f"after {args.epochs} epochs (lr {args.lr}, batch {args.batch}, distill {args.distill}): "
              f"{result['map50']:.4f} (mAP@0.5:0.95 {result['map']:.4f}; {cpu:.0f} s CPU)", flush=True)


if __name__ == "__main__":
    main()
