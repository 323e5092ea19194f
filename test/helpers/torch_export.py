"""Exports a small Conv+BatchNorm+Linear network with torch.onnx.export, as users do, for soup's tests.

Writes into the folder given as argv[1]: fused-{a,b}.onnx (default flags: BatchNorm folded into Conv
in eval mode), kept-{a,b}.onnx (training=PRESERVE, do_constant_folding=False: names kept),
a.safetensors (model a's state dict, num_batches_tracked included), runs/{a,b}.pt (both state dicts
as torch.save writes them) and data.npz (x, and y = model a's own predictions, so its accuracy is exactly 1).
"""
import json
import os
import struct
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
out = sys.argv[1]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def make(seed):
    torch.manual_seed(seed)
    model = Net()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.5, 0.5)
    return model.eval()


def save_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().numpy()
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[array.dtype]
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


x = torch.from_numpy(np.random.default_rng(0).standard_normal((64, 1, 8, 8)).astype(np.float32))
axes = {"x": {0: "batch"}, "logits": {0: "batch"}}
for name, seed in (("a", 1), ("b", 2)):
    model = make(seed)
    torch.onnx.export(model, x[:1], f"{out}/fused-{name}.onnx", input_names=["x"], output_names=["logits"], dynamic_axes=axes)
    torch.onnx.export(model, x[:1], f"{out}/kept-{name}.onnx", input_names=["x"], output_names=["logits"], dynamic_axes=axes,
                      do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    os.makedirs(f"{out}/runs", exist_ok=True)
    torch.save(model.state_dict(), f"{out}/runs/{name}.pt")
    if name == "a":
        save_safetensors(f"{out}/a.safetensors", model.state_dict())
        with torch.no_grad():
            y = model(x).argmax(1).numpy().astype(np.int64)
        np.savez(f"{out}/data.npz", x=x.numpy(), y=y)
