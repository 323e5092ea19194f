"""Expected values for soup's merge methods, computed by mergekit's own method code.

mergekit cannot be installed here (no pydantic, no transformers), and nothing of it is vendored: this
script reads mergekit's method files unmodified from a mergekit git directory or checkout (the `fetch`
of github:arcee-ai/mergekit), stubs only the infrastructure they import (pydantic's BaseModel, the task
graph, the architecture and config types) and runs the methods' own functions and tasks in float64
on small seeded tensors. It writes fixtures/mergekit/cases.json, which test/soup/merge/methods/mergekit.test.ts
reads; soup's numbers are compared with these.

Randomness: della draws its masks with torch.bernoulli. Here `torch.bernoulli` in mergekit's sparsify
module is replaced by soup's counter-based generator (re-implemented below), so the masks are soup's
and the rest of the arithmetic is mergekit's.

    /usr/bin/python3 scripts/mergekit-reference.py /work/.mirror/arcee-ai+mergekit/repo
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import types
import typing

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'mergekit', 'cases.json')


def read_source(where, path):
    if os.path.isdir(os.path.join(where, 'mergekit')):
        with open(os.path.join(where, path)) as handle:
            return handle.read()
    return subprocess.check_output(['git', f'--git-dir={where}', 'show', f'HEAD:{path}']).decode()


def stub(name, **attributes):
    module = types.ModuleType(name)
    module.__path__ = []
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


class BaseModel:
    """pydantic's BaseModel, as far as the method classes use it: keyword construction."""

    def __init_subclass__(cls, **_kwargs):
        super().__init_subclass__()

    def __init__(self, **fields):
        for key, value in fields.items():
            setattr(self, key, value)


T = typing.TypeVar('T')


class Task(BaseModel, typing.Generic[T]):
    pass


class ImmutableMap:
    def __class_getitem__(cls, _item):
        return cls

    def __init__(self, data):
        self.data = dict(data)

    def __getitem__(self, key):
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __contains__(self, key):
        return key in self.data


class WeightInfo:
    def __init__(self, name):
        self.name = name
        self.is_embed = False


def load_mergekit(where):
    stub('pydantic', BaseModel=BaseModel, Field=lambda *a, **k: None)
    stub('mergekit')
    stub('mergekit.architecture', WeightInfo=WeightInfo)
    stub('mergekit.common', ImmutableMap=ImmutableMap, ModelReference=str)
    stub('mergekit.graph', Task=Task)
    stub('mergekit.merge_methods')
    stub('mergekit.merge_methods.base', ConfigParameterDef=lambda **k: k, MergeMethod=type('MergeMethod', (), {}), MergeTensorInput=object)
    stub('mergekit.merge_methods.rectify_embed', rectify_embed_sizes=lambda weight_info, tensors: None)
    stub('mergekit.merge_methods.easy_define', merge_method=lambda **_: (lambda func: func))
    loaded = {}
    for name, path in [
        ('mergekit.sparsify', 'mergekit/sparsify.py'),
        ('mergekit.merge_methods.generalized_task_arithmetic', 'mergekit/merge_methods/generalized_task_arithmetic.py'),
        ('mergekit.merge_methods.linear', 'mergekit/merge_methods/linear.py'),
        ('mergekit.merge_methods.sce', 'mergekit/merge_methods/sce.py'),
        ('mergekit.merge_methods.karcher', 'mergekit/merge_methods/karcher.py'),
        ('mergekit.merge_methods.nuslerp', 'mergekit/merge_methods/nuslerp.py'),
        ('mergekit.merge_methods.multislerp', 'mergekit/merge_methods/multislerp.py'),
        ('mergekit.merge_methods.nearswap', 'mergekit/merge_methods/nearswap.py'),
        ('mergekit.merge_methods.arcee_fusion', 'mergekit/merge_methods/arcee_fusion.py'),
        ('mergekit.merge_methods.passthrough', 'mergekit/merge_methods/passthrough.py'),
        ('mergekit.merge_methods.slerp', 'mergekit/merge_methods/slerp.py'),
        ('mergekit.merge_methods.model_stock', 'mergekit/merge_methods/model_stock.py'),
    ]:
        module = stub(name)
        module.__file__ = path
        exec(compile(read_source(where, path), path, 'exec'), module.__dict__)
        loaded[name.split('.')[-1]] = module
    return loaded


# soup's CounterRandom (src/soup/merge/methods/dare.ts), bit for bit.
def mix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def counter_uniforms(seed, tensor, ingredient, count):
    key = struct.unpack('<4I', hashlib.sha256(f'{seed}\0{tensor}\0{ingredient}'.encode()).digest()[:16])
    out = np.empty(count)
    for i in range(count):
        h = mix32(i ^ key[0])
        h = mix32(h ^ 0 ^ key[1])
        h = mix32((h + key[2]) & 0xFFFFFFFF)
        h = mix32(h ^ key[3])
        out[i] = h / 2**32
    return out


class SeededBernoulli:
    """torch, except that bernoulli(probs) keeps entry i when soup's number i is below probs[i],
    and float32 (sparsify's CPU work dtype) is float64."""

    def __init__(self):
        self.queue = []

    def __getattr__(self, name):
        # sparsify works in float32 on CPU (in the tensor's dtype on an accelerator): float64 here.
        return torch.float64 if name == 'float32' else getattr(torch, name)

    def bernoulli(self, probs):
        seed, tensor, ingredient = self.queue.pop(0)
        uniforms = torch.from_numpy(counter_uniforms(seed, tensor, ingredient, probs.numel())).reshape(probs.shape)
        return (uniforms < probs).to(probs.dtype)


def rng_tensors(seed, shape, count, scale=0.1):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=shape)
    return base, [base + scale * rng.normal(size=shape) for _ in range(count)]


def t64(values):
    return torch.tensor(np.asarray(values), dtype=torch.float64)


def main(where):
    mk = load_mergekit(where)
    gta = mk['generalized_task_arithmetic']
    sparsify = mk['sparsify']
    bernoulli = SeededBernoulli()
    sparsify.torch = bernoulli
    cases = []

    def add(method, tensor, shape, base, models, names, global_params, model_params, expected, seed=0, note=''):
        cases.append({
            'method': method, 'note': note, 'tensor': tensor, 'shape': list(shape), 'seed': seed,
            'base': None if base is None else np.asarray(base).ravel().tolist(),
            'models': [np.asarray(m).ravel().tolist() for m in models], 'names': names,
            'global': global_params, 'modelParameters': model_params,
            'expected': expected.detach().numpy().ravel().tolist(),
        })

    def run_gta(name, consensus, sparsification, normalize, rescale, tensor, shape, params, global_params, seed=0, scale=0.1, count=3):
        base, models = rng_tensors(len(cases) + 100, shape, count, scale)
        names = [f'model-{k}' for k in range(count)]
        merge = gta.GeneralizedTaskArithmeticMerge(consensus_method=consensus, sparsification_method=sparsification, default_normalize=normalize, default_rescale=rescale, method_name=name, method_pretty_name=None, method_reference_url=None)
        full = []
        for own in params:
            p = {'weight': own['weight'], 'density': own.get('density', 1.0)}
            if sparsification == sparsify.SparsificationMethod.magnitude_outliers:
                p['gamma'] = own.get('gamma', 0.01)
            if sparsification == sparsify.SparsificationMethod.della_magprune:
                p['epsilon'] = own.get('epsilon', 0.15)
            full.append(ImmutableMap(p))
        task = gta.GTATask(method=merge, tensors=None, base_model='base', weight_info=WeightInfo(tensor),
                           tensor_parameters=ImmutableMap(dict(zip(names, full))), int8_mask=False,
                           normalize=global_params.get('normalize', normalize), lambda_=global_params.get('lambda', 1.0),
                           rescale_norm=sparsify.RescaleNorm.l1 if global_params.get('rescale', rescale) else None)
        bernoulli.queue = [(seed, tensor, n) for n in names]
        tensors = {'base': t64(base), **{n: t64(m) for n, m in zip(names, models)}}
        add(name, tensor, shape, base, models, names, global_params, params, task.execute(tensors), seed)

    S = sparsify.SparsificationMethod
    C = gta.ConsensusMethod
    # breadcrumbs_ties: 40 entries, gamma * n = 2 dropped from the top, density keeps 20.
    run_gta('breadcrumbs_ties', C.sum, S.magnitude_outliers, False, False, 'model.layers.0.mlp.weight', (5, 8),
            [{'weight': 1.0, 'density': 0.5, 'gamma': 0.05}, {'weight': 0.5, 'density': 0.4, 'gamma': 0.1}, {'weight': 0.7, 'density': 0.6, 'gamma': 0.05}], {})
    run_gta('breadcrumbs_ties', C.sum, S.magnitude_outliers, False, False, 'w', (50,),
            [{'weight': 1.0, 'density': 0.5, 'gamma': 0.1}, {'weight': 1.0, 'density': 0.3, 'gamma': 0.04}, {'weight': 2.0, 'density': 0.5, 'gamma': 0.02}], {'normalize': True, 'rescale': True})
    for name, consensus, normalize in [('della', C.sum, True), ('della_linear', None, False)]:
        run_gta(name, consensus, S.della_magprune, normalize, True, 'model.layers.1.self_attn.q_proj.weight', (6, 10),
                [{'weight': 1.0, 'density': 0.5}, {'weight': 0.6, 'density': 0.4, 'epsilon': 0.2}, {'weight': 0.3, 'density': 0.7, 'epsilon': 0.1}], {}, seed=7)
        run_gta(name, consensus, S.della_magprune, normalize, True, 'model.norm.weight', (24,),
                [{'weight': 1.0, 'density': 0.5}, {'weight': 1.0, 'density': 0.3, 'epsilon': 0.05}, {'weight': 1.0, 'density': 0.5}], {'rescale': False, 'lambda': 1.5}, seed=3)
        run_gta(name, consensus, S.della_magprune, normalize, True, 'conv.weight', (3, 4, 2, 2),
                [{'weight': 1.0, 'density': 0.6}, {'weight': 0.5, 'density': 0.6}, {'weight': 0.5, 'density': 0.6}], {}, seed=1)

    # The methods soup had before, as a regression check.
    run_gta('task_arithmetic', None, None, False, False, 'w', (4, 6), [{'weight': 1.0}, {'weight': 0.5}, {'weight': -0.3}], {'lambda': 0.8})
    run_gta('ties', C.sum, S.magnitude, True, False, 'w', (5, 8), [{'weight': 1.0, 'density': 0.5}, {'weight': 0.5, 'density': 0.3}, {'weight': 0.7, 'density': 0.8}], {})
    run_gta('ties', C.sum, S.magnitude, True, False, 'w', (40,), [{'weight': 1.0, 'density': 0.5}, {'weight': 1.0, 'density': 0.5}, {'weight': 1.0, 'density': 0.5}], {'rescale': True, 'normalize': False})
    for name, consensus in [('dare_linear', None), ('dare_ties', C.sum)]:
        run_gta(name, consensus, S.random, False, True, 'model.layers.0.w', (6, 7), [{'weight': 1.0, 'density': 0.5}, {'weight': 0.5, 'density': 0.3}, {'weight': 0.7, 'density': 0.9}], {}, seed=5)
    run_gta('breadcrumbs', None, S.magnitude_outliers, False, False, 'w', (5, 8), [{'weight': 1.0, 'density': 0.5, 'gamma': 0.05}, {'weight': 0.5, 'density': 0.4, 'gamma': 0.1}, {'weight': 0.7, 'density': 0.6, 'gamma': 0.05}], {})
    for t in [0.3, 0.8]:
        base, models = rng_tensors(90 + int(10 * t), (4, 5), 1, scale=0.5)
        # slerp turns torch tensors into float32 numpy arrays; given float64 numpy arrays it stays in float64.
        expected = torch.from_numpy(mk['slerp'].slerp(t, np.asarray(base), np.asarray(models[0])))
        as_written = mk['slerp'].slerp(t, t64(base), t64(models[0]))
        print(f'slerp t={t}: float32 inputs move the result by {float((as_written.double() - expected).abs().max()):.3g}')
        add('slerp', 'w', (4, 5), base, models, ['a'], {'t': t}, [{}], expected)
    for filter_wise in [False, True]:
        base, models = rng_tensors(95 + filter_wise, (4, 5), 3, scale=0.5)
        task = mk['model_stock'].ModelStockMergeTask(gather_tensors=None, base_model='base', weight_info=WeightInfo('w'), filter_wise=filter_wise)
        add('model_stock', 'w', (4, 5), base, models, ['a', 'b', 'c'], {'filter_wise': filter_wise}, [{}, {}, {}],
            task.execute({'base': t64(base), 'a': t64(models[0]), 'b': t64(models[1]), 'c': t64(models[2])}))

    # linear with the base listed among the models: mergekit averages it in with its weight.
    base, models = rng_tensors(11, (4, 6), 2)
    weights = {'model-0': 0.5, 'model-1': 0.3, 'base': 0.2}
    task = mk['linear'].LinearMergeTask(gather_tensors=None, weight_info=WeightInfo('fc.weight'), normalize=True,
                                        tensor_parameters=ImmutableMap({k: ImmutableMap({'weight': w}) for k, w in weights.items()}))
    expected = task.execute({'model-0': t64(models[0]), 'model-1': t64(models[1]), 'base': t64(base)})
    add('linear', 'fc.weight', (4, 6), None, [models[0], models[1], base], ['model-0', 'model-1', 'base'], {}, [{'weight': w} for w in weights.values()], expected, note='base listed in models')

    for topk in [1.0, 0.5, 0.25]:
        base, models = rng_tensors(20 + int(topk * 100), (6, 7), 3)
        expected = mk['sce'].sce_merge(tensors=[t64(m) for m in models], base_tensor=t64(base), int8_mask=False, select_topk=topk)
        add('sce', 'w', (6, 7), base, models, ['a', 'b', 'c'], {'select_topk': topk}, [{}, {}, {}], expected)

    for max_iter, tol, count in [(10, 1e-5, 3), (3, 1e-5, 4), (50, 1e-12, 2)]:
        base, models = rng_tensors(30 + max_iter, (5, 6), count, scale=0.8)
        everything = models + [base]  # mergekit hands karcher the base too, after the listed models
        run = lambda: mk['karcher'].karcher_merge_tensors([t64(m) for m in everything], [1.0 / len(everything)] * len(everything), max_iter=max_iter, tol=tol)
        as_written = run()
        # karcher takes its norms of t.float(): float32 even for float64 tensors. Kept in float64 here.
        float_method = torch.Tensor.float
        torch.Tensor.float = lambda self: self
        try:
            expected = run()
        finally:
            torch.Tensor.float = float_method
        print(f'karcher max_iter={max_iter}: float32 norms move the result by {float((as_written - expected).abs().max()):.3g}')
        add('karcher', 'w', (5, 6), None, everything, [f'm{k}' for k in range(len(everything))], {'max_iter': max_iter, 'tol': tol}, [{} for _ in everything], expected)

    for with_base in [False, True]:
        for row_wise, flatten in [(False, True), (False, False), (True, False)]:
            base, models = rng_tensors(40 + row_wise * 2 + flatten, (4, 5), 2, scale=0.5)
            params = {'a': ImmutableMap({'weight': 0.7}), 'b': ImmutableMap({'weight': 0.4})}
            if with_base:
                params['base'] = ImmutableMap({'weight': None})
            task = mk['nuslerp'].NuSlerpTask(gather_tensors=None, tensor_parameters=ImmutableMap(params), weight_info=WeightInfo('w'),
                                             row_wise=row_wise, flatten=flatten, base_model='base' if with_base else None)
            tensors = {'a': t64(models[0]), 'b': t64(models[1])}
            if with_base:
                tensors['base'] = t64(base)
            add('nuslerp', 'w', (4, 5), base if with_base else None, models, ['a', 'b'], {'nuslerp_row_wise': row_wise, 'nuslerp_flatten': flatten},
                [{'weight': 0.7}, {'weight': 0.4}], task.execute(tensors))

    for with_base, count in [(True, 3), (False, 3), (True, 2)]:
        base, models = rng_tensors(50 + count + with_base, (3, 8), count, scale=0.3)
        w = [0.5, 0.3, 0.9][:count]
        expected = mk['multislerp'].multislerp(tensors=[t64(m) for m in models], weight=w, base_tensor=t64(base) if with_base else None, normalize_weights=True, eps=1e-8)
        add('multislerp', 'w', (3, 8), base if with_base else None, models, [f'm{k}' for k in range(count)], {}, [{'weight': x} for x in w], expected)

    for t in [0.05, 0.2]:
        base, models = rng_tensors(60, (30,), 1, scale=0.2)
        expected = mk['nearswap'].nearswap_merge(tensors=[t64(models[0])], base_tensor=t64(base), t=t)
        add('nearswap', 'w', (30,), base, models, ['a'], {'t': t}, [{}], expected)

    for shape in [(6, 8), (40,)]:
        base, models = rng_tensors(70 + len(shape), shape, 1, scale=0.5)
        task = mk['arcee_fusion'].ArceeFusionMergeTask(gather_tensors=None, base_model='base', weight_info=WeightInfo('w'))
        expected = task.execute({'base': t64(base), 'a': t64(models[0])})
        add('arcee_fusion', 'w', shape, base, models, ['a'], {}, [{}], expected)

    base, models = rng_tensors(80, (3, 4), 1)
    for scale in [None, 0.5]:
        task = mk['passthrough'].PassthroughMergeTask(gather_tensors=None, tensor_parameters=ImmutableMap({'a': ImmutableMap({} if scale is None else {'scale': scale})}))
        add('passthrough', 'w', (3, 4), None, models, ['a'], {}, [{} if scale is None else {'scale': scale}], task.execute({'a': t64(models[0])}))

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as handle:
        json.dump({'source': 'mergekit method code run in float64 by scripts/mergekit-reference.py', 'cases': cases}, handle)
        handle.write('\n')
    print(f'{len(cases)} cases -> {os.path.relpath(OUT)}')


if __name__ == '__main__':
    torch.set_default_dtype(torch.float64)
    main(sys.argv[1] if len(sys.argv) > 1 else '/work/.mirror/arcee-ai+mergekit/repo')
