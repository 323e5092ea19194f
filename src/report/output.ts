import { randomBytes } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OutputError, describeFsError } from '../errors.js';

/** Writes a report file (Markdown, SVG) through a temporary file, so readers never see half of it. */
export async function writeReport(file: string, text: string): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(temp, text, { flag: 'wx' });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw new OutputError(file, `cannot write: ${describeFsError(error)}`, { cause: error });
  }
}
