#!/usr/bin/python3
"""Writes fixtures/torch/: real torch.save files for the PyTorch reader's tests, and expected.json
with every tensor's dtype, shape and values so the tests compare exact values without Python.

Run with Debian's torch: /usr/bin/python3 scripts/make-torch-fixtures.py (npm run fixtures:torch).
Deterministic: the same torch version writes the same bytes.
"""
import json
import os
import shutil
from collections import OrderedDict

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'torch')
DTYPES = {
    torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16',
    torch.int64: 'I64', torch.int32: 'I32', torch.int16: 'I16', torch.int8: 'I8', torch.uint8: 'U8', torch.bool: 'BOOL',
}


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(3, 4)
        self.fc2 = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def mlp_state(seed):
    torch.manual_seed(seed)
    return MLP().state_dict()


def describe(tensors):
    """What the reader must report for each tensor, in stored order."""
    out = OrderedDict()
    seen = []
    for name, t in tensors.items():
        entry = {'dtype': DTYPES[t.dtype], 'shape': list(t.shape)}
        flat = t.detach().contiguous().reshape(-1)
        if t.dtype in (torch.int64,):
            entry['values'] = [str(v) for v in flat.tolist()]
        elif t.dtype == torch.bool:
            entry['values'] = [int(v) for v in flat.tolist()]
        elif t.dtype in (torch.float16, torch.bfloat16):
            entry['values'] = flat.float().tolist()
        else:
            entry['values'] = flat.tolist()
        for other_name, other in seen:
            if (other.untyped_storage().data_ptr() if hasattr(other, 'untyped_storage') else other.storage().data_ptr()) == \
               (t.untyped_storage().data_ptr() if hasattr(t, 'untyped_storage') else t.storage().data_ptr()) and \
               other.storage_offset() == t.storage_offset() and other.shape == t.shape and other.stride() == t.stride():
                entry['tiedTo'] = other_name
                break
        seen.append((name, t))
        out[name] = entry
    return out


def save(obj, name, **kwargs):
    path = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path, **kwargs)
    return path


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    expected = OrderedDict()

    plain = mlp_state(1)
    save(plain, 'plain.pt')
    expected['plain.pt'] = {'tensors': describe(plain)}

    # Protocol 4 uses other opcodes (FRAME, SHORT_BINUNICODE, MEMOIZE, ...) than torch.save's default 2.
    save(plain, 'protocol4.pt', pickle_protocol=4)
    expected['protocol4.pt'] = {'tensors': describe(plain)}

    torch.manual_seed(2)
    embed = torch.randn(5, 3)
    tied = OrderedDict([('embed.weight', embed), ('hidden.bias', torch.randn(3)), ('head.weight', embed)])
    save(tied, 'tied.pt')
    expected['tied.pt'] = {'tensors': describe(tied)}

    # Views keep their whole storage in the file: a transposed view, a row at a storage offset, a
    # broadcast (stride 0), and a step slice.
    base = torch.arange(15, dtype=torch.float32).reshape(3, 5) / 4
    views = OrderedDict([
        ('transposed', base.t()),
        ('row', base[1]),
        ('broadcast', torch.tensor([1.5, -2.0, 3.25]).expand(4, 3)),
        ('strided', base[:, 1::2]),
        ('scalar', torch.tensor(2.5)),
        ('empty', torch.zeros(0, 3)),
    ])
    save(views, 'views.pt')
    expected['views.pt'] = {'tensors': describe(views)}

    torch.manual_seed(3)
    dtypes = OrderedDict([
        ('bf16', torch.randn(2, 3).to(torch.bfloat16)),
        ('f16', torch.randn(3, 2).to(torch.float16)),
        ('f64', torch.randn(4, dtype=torch.float64)),
        ('i64', torch.tensor([0, -1, 2 ** 53 + 1, -(2 ** 62), 2 ** 63 - 1], dtype=torch.int64)),
        ('i32', torch.tensor([-7, 8, 2 ** 31 - 1], dtype=torch.int32)),
        ('i16', torch.tensor([-300, 300], dtype=torch.int16)),
        ('i8', torch.tensor([-128, 127], dtype=torch.int8)),
        ('u8', torch.tensor([0, 255, 7], dtype=torch.uint8)),
        ('mask', torch.tensor([True, False, True])),
        ('bf16_t', torch.randn(3, 2).to(torch.bfloat16).t()),
    ])
    save(dtypes, 'dtypes.pt')
    expected['dtypes.pt'] = {'tensors': describe(dtypes)}

    # A training checkpoint as the PyTorch tutorials write it: weights under model_state_dict, beside
    # the epoch, optimizer state (tensors keyed by int, floats in param_groups) and a loss.
    torch.manual_seed(4)
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    training = {'epoch': 3, 'model_state_dict': model.state_dict(), 'optimizer_state_dict': optimizer.state_dict(), 'loss': 0.25}
    save(training, 'training.ckpt')
    expected['training.ckpt'] = {
        'key': 'model_state_dict', 'ignored': ['epoch', 'optimizer_state_dict', 'loss'],
        'tensors': describe(model.state_dict()),
        'optimizer_state_dict': {'state.0.momentum_buffer': describe({'m': optimizer.state_dict()['state'][0]['momentum_buffer']})['m']},
    }

    # Hugging Face layouts: one pytorch_model.bin, and shards with an index.
    hf = mlp_state(5)
    save(hf, 'hf-single/pytorch_model.bin')
    with open(os.path.join(OUT, 'hf-single', 'config.json'), 'w') as f:
        json.dump({'model_type': 'mlp'}, f)
    expected['hf-single/pytorch_model.bin'] = {'tensors': describe(hf)}
    names = list(hf.keys())
    shards = [OrderedDict((n, hf[n]) for n in names[:2]), OrderedDict((n, hf[n]) for n in names[2:])]
    weight_map = OrderedDict()
    for i, shard in enumerate(shards):
        file = f'pytorch_model-{i + 1:05d}-of-{len(shards):05d}.bin'
        save(shard, os.path.join('hf-sharded', file))
        for n in shard:
            weight_map[n] = file
    total = sum(t.numel() * t.element_size() for t in hf.values())
    with open(os.path.join(OUT, 'hf-sharded', 'pytorch_model.bin.index.json'), 'w') as f:
        json.dump({'metadata': {'total_size': total}, 'weight_map': weight_map}, f, indent=2)
    expected['hf-sharded'] = {'tensors': describe(hf), 'shards': weight_map}

    legacy = mlp_state(6)
    save(legacy, 'legacy.pt', _use_new_zipfile_serialization=False)
    expected['legacy.pt'] = {'tensors': describe(legacy)}

    # What soup refuses: a whole pickled module (its class lives in __main__) and a TorchScript archive.
    torch.manual_seed(7)
    save(MLP(), 'whole-model.pt')
    torch.manual_seed(7)
    torch.jit.script(torch.nn.Linear(2, 2)).save(os.path.join(OUT, 'torchscript.pt'))

    # A small sweep for soup uniform: three runs of one architecture.
    for i in range(1, 4):
        run = mlp_state(10 + i)
        save(run, f'runs/run-{i}.pt')
        expected[f'runs/run-{i}.pt'] = {'tensors': describe(run)}

    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump({'torch': torch.__version__, 'fixtures': expected}, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
