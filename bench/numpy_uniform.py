"""The numpy baseline: a uniform soup of safetensors files, streamed with memmap, written as safetensors.

Usage: numpy_uniform.py OUT IN1 IN2 ...  (float32 tensors, as bench/make-checkpoints.ts writes them)
"""
import json
import struct
import sys

import numpy as np


def read_header(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return header, 8 + length


out, inputs = sys.argv[1], sys.argv[2:]
headers = [read_header(p) for p in inputs]
maps = [np.memmap(p, dtype=np.uint8, mode="r") for p in inputs]
first, _ = headers[0]
names = sorted((k for k in first if k != "__metadata__"), key=lambda k: first[k]["data_offsets"][0])

entries, offset = {}, 0
for name in names:
    size = first[name]["data_offsets"][1] - first[name]["data_offsets"][0]
    entries[name] = {"dtype": "F32", "shape": first[name]["shape"], "data_offsets": [offset, offset + size]}
    offset += size
text = json.dumps(entries, separators=(",", ":")).encode()
text += b" " * (-len(text) % 8)

with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for name in names:
        acc = None
        for (header, start), mm in zip(headers, maps):
            begin, end = header[name]["data_offsets"]
            values = mm[start + begin : start + end].view(np.float32)
            if acc is None:
                acc = values.astype(np.float32)
            else:
                acc += values
        acc /= len(inputs)
        f.write(acc.tobytes())
