/** Which TF.js backend to try, fastest first; the TF.js module itself is loaded by eval/tfjs.ts. */
export const BACKENDS = ['node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

/** The order to try: the forced one alone, or all of them fastest first. */
export function backendOrder(forced?: BackendName): readonly BackendName[] {
  return forced === undefined ? BACKENDS : [forced];
}

/** TF.js registers the tfjs-node backend under the name "tensorflow". */
export function tfjsBackendName(backend: BackendName): string {
  return backend === 'node' ? 'tensorflow' : backend;
}
