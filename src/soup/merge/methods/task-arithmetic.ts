import type { MergeMethod } from './method.js';
import { taskVectorMethod, taskVectorParameters } from './task-vectors.js';

/** theta_base + lambda * sum(w_i delta_i) (Ilharco et al., "Editing models with task arithmetic"). */
export const taskArithmetic: MergeMethod = taskVectorMethod({
  name: 'task_arithmetic',
  description: 'base plus the weighted sum of task vectors',
  consensus: false,
  parameters: taskVectorParameters({ normalize: false, density: false }),
});
