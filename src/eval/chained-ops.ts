/**
 * Tensor methods (x.reshape(...), x.mul(...)) that tfjs-layers calls on tensors. The @tensorflow/tfjs
 * umbrella package registers them on import; tfjs-core alone does not (its Node bundle leaves the
 * side-effect module out), so without this a model whose layers call them fails with
 * "x.reshape is not a function". The list is tfjs-core 4.x's public/chained_ops.
 */

/** Methods that are the op of the same name with the tensor as first argument. */
const SAME_NAME = `abs acos acosh add all any argMax argMin asin asinh atan atan2 atanh batchToSpaceND batchNorm
  broadcastTo cast ceil clipByValue conv1d conv2d cos cosh cumprod cumsum depthToSpace divNoNan div dot elu equal
  erf euclideanNorm exp expandDims expm1 fft floor floorDiv gather greaterEqual greater ifft irfft isFinite isInf
  isNaN leakyRelu lessEqual less logSigmoid logSoftmax logSumExp log log1p logicalAnd logicalNot logicalOr
  logicalXor matMul max maximum mean min minimum mirrorPad mod mul neg norm notEqual oneHot onesLike pad pool pow
  prelu prod reciprocal relu relu6 reshape reverse rfft round rsqrt selu sigmoid sign sin sinh slice softmax
  softplus spaceToBatchND split sqrt square squaredDifference squeeze step stridedSlice sub sum tan tanh tile topk
  transpose unique unstack zerosLike`.split(/\s+/);

interface TensorLike {
  readonly size: number;
  readonly shape: number[];
  throwIfDisposed(): void;
}
type Op = (...args: unknown[]) => unknown;

/** Adds the chained methods to `core.Tensor` where they are missing (idempotent). */
export function registerChainedOps(core: { Tensor: unknown } & object): void {
  const ops = core as unknown as Record<string, Op>;
  const proto = (core.Tensor as { prototype: Record<string, unknown> }).prototype;
  const define = (name: string, method: (this: TensorLike, ...args: unknown[]) => unknown): void => {
    if (typeof proto[name] === 'function') return;
    proto[name] = function (this: TensorLike, ...args: unknown[]) {
      this.throwIfDisposed();
      return method.apply(this, args);
    };
  };
  for (const name of SAME_NAME) {
    const op = ops[name];
    if (typeof op === 'function')
      define(name, function (...args) {
        return op(this, ...args);
      });
  }
  const isTensor = (value: unknown): boolean => value instanceof (core.Tensor as new () => unknown);
  define('asScalar', function () {
    if (this.size !== 1) throw new Error('The array must have only 1 element.');
    return ops.reshape!(this, []);
  });
  define('as1D', function () {
    return ops.reshape!(this, [this.size]);
  });
  define('flatten', function () {
    return ops.reshape!(this, [this.size]);
  });
  define('as2D', function (...shape) {
    return ops.reshape!(this, shape);
  });
  define('as3D', function (...shape) {
    return ops.reshape!(this, shape);
  });
  define('as4D', function (...shape) {
    return ops.reshape!(this, shape);
  });
  define('as5D', function (...shape) {
    return ops.reshape!(this, shape);
  });
  define('reshapeAs', function (x) {
    return ops.reshape!(this, (x as TensorLike).shape);
  });
  define('asType', function (dtype) {
    return ops.cast!(this, dtype);
  });
  define('toBool', function () {
    return ops.cast!(this, 'bool');
  });
  define('toFloat', function () {
    return ops.cast!(this, 'float32');
  });
  define('toInt', function () {
    return ops.cast!(this, 'int32');
  });
  define('concat', function (x, axis) {
    return ops.concat!([this, ...(isTensor(x) ? [x] : (x as unknown[]))], axis);
  });
  define('stack', function (x, axis) {
    return ops.stack!([this, ...(isTensor(x) ? [x] : (x as unknown[]))], axis);
  });
  define('where', function (condition, x) {
    return ops.where!(condition, this, x);
  });
}
