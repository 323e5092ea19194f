import { parse } from 'csv-parse/sync';
import { InputError } from '../errors.js';

export interface CsvData {
  x: Float32Array;
  y: Int32Array;
  features: number;
}

/** A CSV with a header row and a `label` column; every other column is a numeric feature. */
export function parseCsv(text: string, file: string): CsvData {
  let rows: string[][];
  try {
    rows = parse(text, { skip_empty_lines: true, trim: true, bom: true });
  } catch (error) {
    throw new InputError(file, `not a readable CSV file: ${(error as Error).message}`, { cause: error });
  }
  const [header, ...body] = rows;
  if (header === undefined) throw new InputError(file, 'empty CSV file');
  const labelColumn = header.indexOf('label');
  if (labelColumn < 0) throw new InputError(file, `no "label" column (columns: ${header.slice(0, 8).join(', ')}${header.length > 8 ? ', ...' : ''})`);
  const features = header.length - 1;
  const x = new Float32Array(body.length * features);
  const y = new Int32Array(body.length);
  body.forEach((row, r) => {
    const line = r + 2;
    if (row.length !== header.length) throw new InputError(file, `line ${line} has ${row.length} fields, the header has ${header.length}`);
    let f = 0;
    row.forEach((cell, c) => {
      const value = Number(cell);
      if (cell === '' || !Number.isFinite(value)) throw new InputError(file, `line ${line}, column "${header[c]}": "${cell}" is not a number`);
      if (c === labelColumn) {
        if (!Number.isInteger(value)) throw new InputError(file, `line ${line}: label "${cell}" is not an integer class index`);
        y[r] = value;
      } else {
        x[r * features + f++] = value;
      }
    });
  });
  return { x, y, features };
}
