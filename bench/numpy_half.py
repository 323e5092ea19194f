"""The numpy baseline for half-precision sharded checkpoints: a uniform soup streamed with memmap, tensor
by tensor, summed in float32 and rounded to nearest even, written with the first ingredient's shards.

Usage: numpy_half.py OUT_FOLDER IN_FOLDER1 IN_FOLDER2 ...  (BF16 or F16 shards plus
model.safetensors.index.json, as bench/make-checkpoints.ts writes them)
"""
import json
import os
import struct
import sys

import numpy as np

INDEX = "model.safetensors.index.json"


def read_header(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return header, 8 + length


def widen(raw, dtype):
    if dtype == "F16":
        return raw.view(np.float16).astype(np.float32)
    return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def narrow(mean, dtype):
    if dtype == "F16":
        return mean.astype(np.float16)
    bits = mean.view(np.uint32)
    return ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)


out, inputs = sys.argv[1], sys.argv[2:]
os.makedirs(out, exist_ok=True)
with open(os.path.join(inputs[0], INDEX)) as f:
    index = json.load(f)
for shard in sorted(set(index["weight_map"].values())):
    files = [os.path.join(folder, shard) for folder in inputs]
    headers = [read_header(p) for p in files]
    maps = [np.memmap(p, dtype=np.uint8, mode="r") for p in files]
    first, _ = headers[0]
    names = sorted((k for k in first if k != "__metadata__"), key=lambda k: first[k]["data_offsets"][0])
    text = json.dumps({k: first[k] for k in names}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(out, shard), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            dtype = first[name]["dtype"]
            acc = None
            for (header, start), mm in zip(headers, maps):
                begin, end = header[name]["data_offsets"]
                values = widen(mm[start + begin : start + end], dtype)
                if acc is None:
                    acc = values
                else:
                    acc += values
            acc /= np.float32(len(inputs))
            f.write(narrow(acc, dtype).tobytes())
with open(os.path.join(out, INDEX), "w") as f:
    json.dump(index, f, indent=2)
