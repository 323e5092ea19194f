import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as core from '@tensorflow/tfjs-core';
import * as layers from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';

// The split packages soup depends on, not the @tensorflow/tfjs umbrella, so tests see what users get.
const tf = { ...core, ...layers, io: core.io };
tf.env().set('PROD', true);

export interface SavedModel {
  folder: string;
  /** Weight values by name, as TF.js holds them. */
  weights: Map<string, Float32Array>;
}

/**
 * Saves a small real LayersModel the way TF.js's own file saver lays it out: model.json plus the
 * weight bytes cut into `shards` files of one group.
 */
export async function saveTinyModel(folder: string, seed: number, shards = 1): Promise<SavedModel> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'hidden', inputShape: [3], units: 4, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({
        name: 'logits',
        units: 2,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
        biasInitializer: tf.initializers.constant({ value: seed / 10 }),
      }),
    ],
  });
  let artifacts: core.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (saved) => {
      artifacts = saved;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  const data = new Uint8Array(artifacts!.weightData as ArrayBuffer);
  const size = Math.ceil(data.length / shards);
  const paths = Array.from({ length: shards }, (_, i) => `group1-shard${i + 1}of${shards}.bin`);
  await mkdir(folder, { recursive: true });
  for (const [i, shard] of paths.entries()) await writeFile(path.join(folder, shard), data.subarray(i * size, (i + 1) * size));
  const modelJson = {
    modelTopology: artifacts!.modelTopology,
    format: artifacts!.format,
    generatedBy: artifacts!.generatedBy,
    convertedBy: artifacts!.convertedBy,
    weightsManifest: [{ paths, weights: artifacts!.weightSpecs }],
  };
  await writeFile(path.join(folder, 'model.json'), JSON.stringify(modelJson));
  const weights = new Map(artifacts!.weightSpecs!.map((spec, i) => [spec.name, model.weights[i]!.read().dataSync() as Float32Array]));
  model.dispose();
  return { folder, weights };
}
