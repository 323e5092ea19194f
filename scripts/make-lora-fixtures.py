"""fixtures/lora: a tiny base model, three PEFT LoRA adapters and the merged weights they give.

The merged weights follow PEFT's LoraLayer.get_delta_weight (peft/tuners/lora/layer.py), computed
here in float64 with torch: W + transpose(B @ A, fan_in_fan_out) * scaling, scaling = lora_alpha / r
(lora_alpha / sqrt(r) with use_rslora; r and alpha from rank_pattern / alpha_pattern where a key
matches), embeddings transposed; modules_to_save tensors replace the base's. PEFT itself is not
installed here, so its formula is written out.

    /usr/bin/python3 scripts/make-lora-fixtures.py
"""
import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'lora')


def save_safetensors(file, tensors):
    header, chunks, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, tensor in tensors.items():
        data = tensor.to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(',', ':')).encode()
    raw += b' ' * (-len(raw) % 8)
    os.makedirs(os.path.dirname(file), exist_ok=True)
    with open(file, 'wb') as handle:
        handle.write(struct.pack('<Q', len(raw)) + raw + b''.join(chunks))


def f32(*shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(torch.float32).to(torch.float64)


base = {
    'lm_head.weight': f32(10, 4, seed=1),
    'model.embed_tokens.weight': f32(10, 4, seed=2),
    'model.layers.0.mlp.c_fc.weight': f32(4, 8, seed=3),  # a GPT-2 Conv1D: [in, out]
    'model.layers.0.self_attn.q_proj.weight': f32(6, 4, seed=4),
    'model.layers.0.self_attn.v_proj.weight': f32(4, 4, seed=5),
    'model.norm.weight': f32(4, seed=6),
}
save_safetensors(os.path.join(OUT, 'base', 'model.safetensors'), base)
with open(os.path.join(OUT, 'base', 'config.json'), 'w') as handle:
    json.dump({'model_type': 'llama', 'num_hidden_layers': 1}, handle)


def pattern(patterns, module, default):
    for key, value in patterns.items():
        import re
        if re.match(rf'(.*\.)?{key}$', module):
            return value
    return default


def adapter(name, config, factors, replaced=None, seed=10):
    tensors, merged = {}, {k: v.clone() for k, v in base.items()}
    for k, (module, kind, inner, outer) in enumerate(factors):
        r = pattern(config.get('rank_pattern', {}), module, config['r'])
        alpha = pattern(config.get('alpha_pattern', {}), module, config['lora_alpha'])
        a, b = f32(r, inner, seed=seed + 2 * k), f32(outer, r, seed=seed + 2 * k + 1)
        scaling = alpha / math.sqrt(r) if config.get('use_rslora') else alpha / r
        if kind == 'embedding':
            tensors[f'base_model.model.{module}.lora_embedding_A'] = a
            tensors[f'base_model.model.{module}.lora_embedding_B'] = b
            delta = (b @ a).T * scaling
        else:
            tensors[f'base_model.model.{module}.lora_A.weight'] = a
            tensors[f'base_model.model.{module}.lora_B.weight'] = b
            delta = (b @ a) * scaling
            if config.get('fan_in_fan_out'):
                delta = delta.T
        merged[f'{module}.weight'] = merged[f'{module}.weight'] + delta
    for target in replaced or []:
        value = f32(*base[target].shape, seed=seed + 50)
        tensors[f'base_model.model.{target[:-len(".weight")]}.modules_to_save.weight'] = value
        merged[target] = value
    folder = os.path.join(OUT, name)
    save_safetensors(os.path.join(folder, 'adapter_model.safetensors'), tensors)
    with open(os.path.join(folder, 'adapter_config.json'), 'w') as handle:
        json.dump({'peft_type': 'LORA', 'base_model_name_or_path': 'base', 'target_modules': sorted({f[0].split('.')[-1] for f in factors}), **config}, handle, indent=2)
    return {key: value.reshape(-1).tolist() for key, value in merged.items()}


expected = {
    'adapter-qv': adapter('adapter-qv', {'r': 2, 'lora_alpha': 8, 'rank_pattern': {'v_proj': 1}, 'alpha_pattern': {'v_proj': 3}},
                          [('model.layers.0.self_attn.q_proj', 'linear', 4, 6), ('model.layers.0.self_attn.v_proj', 'linear', 4, 4)], ['lm_head.weight']),
    'adapter-rslora': adapter('adapter-rslora', {'r': 4, 'lora_alpha': 2, 'use_rslora': True},
                              [('model.embed_tokens', 'embedding', 10, 4), ('model.layers.0.self_attn.q_proj', 'linear', 4, 6)], seed=20),
    'adapter-fifo': adapter('adapter-fifo', {'r': 2, 'lora_alpha': 2, 'fan_in_fan_out': True}, [('model.layers.0.mlp.c_fc', 'linear', 4, 8)], seed=30),
}
with open(os.path.join(OUT, 'expected.json'), 'w') as handle:
    json.dump(expected, handle)
    handle.write('\n')
print('fixtures/lora written')
