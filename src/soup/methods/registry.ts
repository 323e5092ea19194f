/** Every merge method, in one list, as mergekit's registry: a new method is one file and one line here. */
import { breadcrumbs } from './breadcrumbs.js';
import { dareLinear, dareTies } from './dare.js';
import { linear } from './linear.js';
import type { MergeMethod } from './method.js';
import { modelStock } from './model-stock.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';

export const METHODS: readonly MergeMethod[] = [linear, taskArithmetic, ties, dareLinear, dareTies, slerp, modelStock, breadcrumbs];

export const METHOD_NAMES: readonly string[] = METHODS.map((method) => method.name);

export function findMethod(name: string): MergeMethod | undefined {
  return METHODS.find((method) => method.name === name);
}
