/** What the scores were measured on: the data set and its size, else --val or the --eval-cmd's own data. */
export function describeScoredData(dataset: { name: string; n: number } | undefined, val: string | undefined): string {
  return dataset === undefined ? (val ?? "the command's own data") : `${dataset.name} (${dataset.n} samples)`;
}
