/**
 * ONNX models whose initializers cannot be averaged as they are, refused with the way out.
 */
import { InputError } from '../../errors.js';
import type { OnnxScan } from './scan.js';

const QUANTIZED_OPS = new Set([
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'MatMulNBits',
  'MatMulInteger',
  'ConvInteger',
  'DynamicQuantizeMatMul',
]);
/** A Constant node holding more floats than this holds weights, not a scale or an epsilon. */
const CONSTANT_WEIGHT_ELEMENTS = 64;

/** Why this model cannot be souped, whatever the other ingredients are; undefined if it can. */
export function findRefusal(scan: OnnxScan): InputError | undefined {
  const { file } = scan;
  const quantizedNode = scan.nodes.findIndex((node) => QUANTIZED_OPS.has(node.opType) || node.opType.startsWith('QLinear'));
  if (quantizedNode >= 0) {
    return new InputError(
      file,
      `is a quantized model (${scan.nodes[quantizedNode]!.opType} at node ${quantizedNode}): averaging quantized weights does not average the model`,
      {
        hint: 'soup the float models, then quantize',
      },
    );
  }
  const int8 = scan.initializers.find((initializer) => (initializer.dtype === 'I8' || initializer.dtype === 'U8') && initializer.dims.length >= 2);
  if (int8 !== undefined) {
    return new InputError(file, `is a quantized model (${int8.dtype} weights)`, { tensor: int8.name, hint: 'soup the float models, then quantize' });
  }
  if (scan.sparseInitializers > 0) {
    return new InputError(file, `has ${scan.sparseInitializers} sparse initializer(s): not supported yet`, {
      hint: 'store the weights dense and export again',
    });
  }
  const subgraph = scan.nodes.findIndex((node) => node.subgraphInitializers > 0);
  if (subgraph >= 0) {
    return new InputError(file, `has weights inside a subgraph (${scan.nodes[subgraph]!.opType} at node ${subgraph}): not supported yet`, {
      hint: 'export with the weights as initializers of the main graph',
    });
  }
  const constant = scan.nodes.findIndex((node) => node.constantFloats > CONSTANT_WEIGHT_ELEMENTS);
  if (constant >= 0) {
    const node = scan.nodes[constant]!;
    return new InputError(
      file,
      `has weights in a Constant node (node ${constant}${node.name === '' ? '' : ` "${node.name}"`}, ${node.constantFloats} values): not supported yet`,
      {
        hint: 'export with the weights as initializers (torch.onnx.export does this for parameters with do_constant_folding=False)',
      },
    );
  }
  return undefined;
}

/**
 * Conv weights that the exporter folded a BatchNormalization into: they get anonymous names
 * (onnx::Conv_123) and the graph has no BatchNormalization node left.
 */
export function findFusedWeights(scan: OnnxScan): string[] {
  if (scan.nodes.some((node) => node.opType === 'BatchNormalization')) return [];
  return scan.initializers.filter((initializer) => initializer.name.startsWith('onnx::Conv_')).map((initializer) => initializer.name);
}

export function fusedError(file: string, fused: readonly string[]): InputError {
  const names = fused.slice(0, 3).join(', ') + (fused.length > 3 ? ', ...' : '');
  return new InputError(
    file,
    `has Conv weights with BatchNorm folded in (${names}, and no BatchNormalization node): averaging fused weights is not the same as fusing averaged weights`,
    {
      hint:
        'export with training=torch.onnx.TrainingMode.PRESERVE and do_constant_folding=False (in eval mode torch.onnx.export folds BatchNorm into Conv), ' +
        'or pass --allow-fused to soup them anyway',
    },
  );
}
