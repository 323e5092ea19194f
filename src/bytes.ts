/** Sizes for people, in every layer: reports show them, and refusals (--max-memory) name them. */

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Decimal units, as `ls -h --si` and Hugging Face show sizes. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}
