#!/usr/bin/python3
"""Writes fixtures/trainer-sweep/: a small fine-tuning sweep laid out as the Hugging Face Trainer leaves it.

    trainer-sweep/
      model.onnx                ONNX export of the MLP (initializers named like the tensors): --model
      val.npz                   x [300, 8] float32, y [300] int64
      eval.py                   (kept, written by hand) an evaluation script that loads a model FOLDER
      ft-lr5e-2-s1/             a run that saved its final model and three checkpoints (best: checkpoint-10)
        model.safetensors, config.json, training_args.bin, trainer_state.json
        checkpoint-10/, checkpoint-20/, checkpoint-30/
      ft-lr1e-2-s2/             runs that kept checkpoints only (checkpoint-10/, checkpoint-20/; best: the last)
      ft-lr3e-2-s3/             and training_args.bin at their root
      ft-lr5e0-s4/              a run that diverged: every checkpoint's weights are NaN

Every checkpoint-N/ holds model.safetensors, config.json, optimizer.pt, scheduler.pt, rng_state.pth,
training_args.bin (a pickled TrainingArguments, which no weights-only unpickler accepts) and
trainer_state.json naming the best checkpoint by eval_loss, as the Trainer writes them.

Run with Debian's torch: /usr/bin/python3 scripts/make-trainer-sweep.py (npm run fixtures:trainer).
Deterministic: the same torch version writes the same bytes.
"""
import io
import json
import os
import random
import shutil
import struct
import sys
import types

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'trainer-sweep')
FEATURES, HIDDEN, CLASSES = 8, 16, 3
CONFIG = {'model_type': 'tiny-mlp', 'architectures': ['TinyMLP'], 'in_features': FEATURES, 'hidden_size': HIDDEN, 'num_labels': CLASSES}

# The Trainer pickles its TrainingArguments; a class from transformers' module, as torch.save records it.
training_args_module = types.ModuleType('transformers.training_args')
sys.modules['transformers'] = types.ModuleType('transformers')
sys.modules['transformers.training_args'] = training_args_module


class TrainingArguments:
    def __init__(self, **fields):
        self.__dict__.update(fields)


TrainingArguments.__module__ = 'transformers.training_args'
training_args_module.TrainingArguments = TrainingArguments


class TinyMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(FEATURES, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def blobs(n, seed):
    """Three overlapping Gaussian classes in 8 dimensions."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(0, 1.0, (CLASSES, FEATURES))
    y = rng.integers(0, CLASSES, n)
    x = centers[y] + rng.normal(0, 1.3, (n, FEATURES))
    return x.astype(np.float32), y.astype(np.int64)


def write_safetensors(path, state):
    """The safetensors layout by hand (the safetensors package is not installed here)."""
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, tensor in state.items():
        data = tensor.detach().contiguous().numpy().astype('<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(',', ':')).encode()
    encoded += b' ' * (-len(encoded) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(encoded)) + encoded + b''.join(chunks))


def evaluate(model, x, y):
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
        accuracy = (logits.argmax(1).numpy() == y).mean().item()
    return loss, accuracy


def save_model_folder(folder, model, args, diverged):
    os.makedirs(folder, exist_ok=True)
    state = model.state_dict()
    if diverged:
        state = {name: torch.full_like(t, float('nan')) for name, t in state.items()}
    write_safetensors(os.path.join(folder, 'model.safetensors'), state)
    with open(os.path.join(folder, 'config.json'), 'w') as f:
        json.dump(CONFIG, f, indent=2)
    torch.save(args, os.path.join(folder, 'training_args.bin'))


def run(name, pretrained, lr, seed, x, y, val, keep_final, diverged=False, steps=20):
    folder = os.path.join(OUT, name)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    model = TinyMLP()
    model.load_state_dict(pretrained)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.1, total_iters=steps)
    args = TrainingArguments(output_dir=f'out/{name}', learning_rate=lr, seed=seed, save_steps=10, metric_for_best_model='eval_loss')
    history, best = [], None
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        batch = torch.randint(0, len(x), (32,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)[batch]), torch.from_numpy(y)[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 10 != 0:
            continue
        eval_loss, eval_accuracy = evaluate(model, *val)
        if diverged:
            eval_loss, eval_accuracy = float('nan'), 1 / CLASSES
        history.append({'step': step, 'eval_loss': eval_loss, 'eval_accuracy': eval_accuracy})
        checkpoint = f'checkpoint-{step}'
        if best is None or eval_loss < best[0]:
            best = (eval_loss, checkpoint)
        target = os.path.join(folder, checkpoint)
        save_model_folder(target, model, args, diverged)
        torch.save(optimizer.state_dict(), os.path.join(target, 'optimizer.pt'))
        torch.save(scheduler.state_dict(), os.path.join(target, 'scheduler.pt'))
        torch.save({'python': random.getstate(), 'numpy': np.random.get_state(), 'cpu': torch.get_rng_state()}, os.path.join(target, 'rng_state.pth'))
        state = {
            # As the Trainer writes it: a NaN loss is written as a bare NaN (json.dumps allows it).
            'best_metric': best[0],
            'best_model_checkpoint': f'out/{name}/{best[1]}',
            'global_step': step,
            'log_history': history,
        }
        with open(os.path.join(target, 'trainer_state.json'), 'w') as f:
            json.dump(state, f, indent=2)
    if keep_final:
        save_model_folder(folder, model, args, diverged)
        shutil.copy(os.path.join(folder, f'checkpoint-{step}', 'trainer_state.json'), os.path.join(folder, 'trainer_state.json'))
    else:
        # Trainer.save_model() is not called, but the arguments are saved at the run's root.
        torch.save(args, os.path.join(folder, 'training_args.bin'))
    return [(entry['step'], entry['eval_loss'], entry['eval_accuracy']) for entry in history], best


def main():
    # eval.py is written by hand and kept; everything else is made here.
    os.makedirs(OUT, exist_ok=True)
    for entry in os.listdir(OUT):
        if entry != 'eval.py':
            target = os.path.join(OUT, entry)
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    torch.manual_seed(0)
    x, y = blobs(600, 1)
    val = blobs(300, 2)
    np.savez(os.path.join(OUT, 'val.npz'), x=val[0], y=val[1])
    # "Pretraining": a few steps on a third of the data, the start every fine-tuning run shares.
    base = TinyMLP()
    optimizer = torch.optim.SGD(base.parameters(), lr=0.05)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(base(torch.from_numpy(x[:200])), torch.from_numpy(y[:200]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    pretrained = {name: t.clone() for name, t in base.state_dict().items()}
    summary = {}
    # Trained on 40 samples for 30 steps: it overfits, so its best checkpoint is not its last.
    summary['ft-lr5e-2-s1'] = run('ft-lr5e-2-s1', pretrained, 5e-2, 1, x[:40], y[:40], val, keep_final=True, steps=30)
    summary['ft-lr1e-2-s2'] = run('ft-lr1e-2-s2', pretrained, 1e-2, 2, x, y, val, keep_final=False)
    summary['ft-lr3e-2-s3'] = run('ft-lr3e-2-s3', pretrained, 3e-2, 3, x, y, val, keep_final=False)
    summary['ft-lr5e0-s4'] = run('ft-lr5e0-s4', pretrained, 5.0, 4, x, y, val, keep_final=False, diverged=True)
    # Initializer names must be the tensor names, so no constant folding (which renames them).
    torch.onnx.export(base, torch.zeros(1, FEATURES), os.path.join(OUT, 'model.onnx'), input_names=['x'], output_names=['logits'],
                      dynamic_axes={'x': {0: 'batch'}, 'logits': {0: 'batch'}}, do_constant_folding=False, opset_version=13)
    for name, (history, best) in summary.items():
        print(name, 'best', best[1], ' '.join(f'{step}: loss {loss:.4f} acc {acc:.4f}' for step, loss, acc in history))


if __name__ == '__main__':
    main()
