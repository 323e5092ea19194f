"""The NCHW twin of fixtures/conv/nhwc: the same weights in a PyTorch module, exported to ONNX.

Called by scripts/make-image-fixtures.ts with a JSON file of the TF.js weights, the fixture images as
NHWC floats, and TF.js's probabilities on them; refuses to write the model unless PyTorch's outputs on
the NCHW transpose of those images agree. Needs /usr/bin/python3 with Debian's python3-torch and python3-onnx.
"""
import json
import sys

import numpy as np
import torch
from torch import nn

SIDE = 28


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 2, 1)
        self.pool = nn.AvgPool2d(2)
        self.logits = nn.Linear(2 * (SIDE // 2) ** 2, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.mix(x)))
        return torch.softmax(self.logits(torch.flatten(x, 1)), dim=1)


def main(source, target):
    with open(source) as f:
        data = json.load(f)
    w = {name: np.array(v["values"], dtype=np.float32).reshape(v["shape"]) for name, v in data["weights"].items()}
    model = Conv().eval()
    half = SIDE // 2
    kernel = w["logits/kernel"]  # [(h * 14 + w) * 2 + c, k] after TF.js's NHWC flatten
    # PyTorch flattens [c, h, w]: reorder the rows so both compute the same function.
    reordered = kernel.reshape(half, half, 2, 10).transpose(2, 0, 1, 3).reshape(-1, 10)
    with torch.no_grad():
        model.mix.weight.copy_(torch.from_numpy(w["mix/kernel"][0, 0].T.copy()).reshape(2, 3, 1, 1))
        model.mix.bias.copy_(torch.from_numpy(w["mix/bias"]))
        model.logits.weight.copy_(torch.from_numpy(reordered.T.copy()))
        model.logits.bias.copy_(torch.from_numpy(w["logits/bias"]))
        nhwc = np.array(data["nhwc"], dtype=np.float32).reshape(data["n"], SIDE, SIDE, 3)
        nchw = torch.from_numpy(nhwc.transpose(0, 3, 1, 2).copy())
        ours = model(nchw).numpy()
    theirs = np.array(data["probabilities"], dtype=np.float32)
    difference = float(np.abs(ours - theirs).max())
    if difference > 1e-5 or (ours.argmax(1) != theirs.argmax(1)).any():
        sys.exit(f"the PyTorch twin disagrees with TF.js (max difference {difference})")
    torch.onnx.export(
        model,
        nchw[:1],
        target,
        input_names=["input"],
        output_names=["probabilities"],
        dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}},
        opset_version=13,
    )
    print(f"nchw.onnx: same predictions as TF.js on {data['n']} images (max difference {difference:.2e})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
