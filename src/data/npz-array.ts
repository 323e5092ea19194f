import type { NumericArray } from './npy.js';

/** One array of an .npz: its shape, and its values read whole or (for a large array) by rows. */
export interface NpzArray {
  shape: number[];
  /** Too large to hold in memory: read it with readRows. */
  large: boolean;
  readAll(): Promise<NumericArray>;
  /** Values of rows [start, start + count) of the first dimension; rowSize values per row. */
  readRows(start: number, count: number, rowSize: number): Promise<ArrayLike<number>>;
}
