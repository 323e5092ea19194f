/** Every merge method, in one list, as mergekit's registry: a new method is one file and one line here. */
import { arceeFusion } from './arcee-fusion.js';
import { breadcrumbs, breadcrumbsTies } from './breadcrumbs.js';
import { dareLinear, dareTies } from './dare.js';
import { della, dellaLinear } from './della.js';
import { karcher } from './karcher.js';
import { linear } from './linear.js';
import type { MergeMethod } from './method.js';
import { modelStock } from './model-stock.js';
import { multislerp } from './multislerp.js';
import { nearswap } from './nearswap.js';
import { nuslerp } from './nuslerp.js';
import { passthrough } from './passthrough.js';
import { sce } from './sce.js';
import { slerp } from './slerp.js';
import { taskArithmetic } from './task-arithmetic.js';
import { ties } from './ties.js';

export const METHODS: readonly MergeMethod[] = [
  linear,
  taskArithmetic,
  ties,
  dareLinear,
  dareTies,
  slerp,
  modelStock,
  breadcrumbs,
  breadcrumbsTies,
  della,
  dellaLinear,
  sce,
  karcher,
  nuslerp,
  multislerp,
  nearswap,
  arceeFusion,
  passthrough,
];

export const METHOD_NAMES: readonly string[] = METHODS.map((method) => method.name);

export function findMethod(name: string): MergeMethod | undefined {
  return METHODS.find((method) => method.name === name);
}
