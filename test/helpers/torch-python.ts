import { spawn } from 'node:child_process';

/** Debian's Python, which has python3-torch; the python3 on PATH may not (see .ci/run). */
export const SYSTEM_PYTHON = '/usr/bin/python3';

/** Runs a Python script with arguments; its stdout's last line is parsed as JSON. */
export function runPython<T>(script: string, args: string[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(SYSTEM_PYTHON, ['-c', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`python exited with ${code}:\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)!) as T);
    });
  });
}

/** What torch and Python's zipfile make of a torch.save file. */
export interface TorchLoad {
  /** Type of what torch.load(weights_only=True) returned. */
  type: string;
  /** In order: name, torch dtype, shape, values (bf16 and f16 widened to float). */
  tensors: [string, string, number[], unknown][];
  /** The name of the first tensor sharing each tensor's storage (itself when it shares none). */
  storageOwner: Record<string, string>;
  /** Plain torch.load (the full unpickler) returns the same tensors. */
  plainLoadAgrees: boolean;
  /** zipfile's testzip(): the first record with a bad CRC, or null. */
  badCrc: string | null;
  records: string[];
  /** Offset of each record's data modulo 64. */
  misalignment: number[];
  /** Records whose central-directory entry carries a ZIP64 extra field. */
  zip64Records: string[];
  /** The soup.recipe record, parsed. */
  recipe: unknown;
}

const LOAD_SCRIPT = `
import json, struct, sys, zipfile, torch
def describe(path):
    sd = torch.load(path, weights_only=True)
    plain = torch.load(path)
    def values(t):
        if t.dtype in (torch.bfloat16, torch.float16): t = t.float()
        return t.tolist()
    owner, seen = {}, {}
    for k, v in sd.items():
        key = v.storage().data_ptr() if v.numel() > 0 else None
        owner[k] = seen.setdefault(key, k) if key is not None else k
    z = zipfile.ZipFile(path)
    misaligned, zip64 = [], []
    with open(path, 'rb') as f:
        for info in z.infolist():
            f.seek(info.header_offset)
            header = f.read(30)
            name_length, extra_length = struct.unpack('<HH', header[26:30])
            misaligned.append((info.header_offset + 30 + name_length + extra_length) % 64)
            extra = info.extra
            while len(extra) >= 4:
                tag, size = struct.unpack('<HH', extra[:4])
                if tag == 1: zip64.append(info.filename)
                extra = extra[4 + size:]
    names = z.namelist()
    recipe = [n for n in names if n.endswith('/soup.recipe')]
    return {
        'type': type(sd).__name__,
        'tensors': [[k, str(v.dtype), list(v.shape), values(v)] for k, v in sd.items()],
        'storageOwner': owner,
        'plainLoadAgrees': list(sd) == list(plain) and all(torch.equal(sd[k], plain[k]) for k in sd),
        'badCrc': z.testzip(),
        'records': names,
        'misalignment': misaligned,
        'zip64Records': zip64,
        'recipe': json.loads(z.read(recipe[0])) if recipe else None,
    }
print(json.dumps([describe(path) for path in sys.argv[1:]]))
`;

/**
 * Loads torch.save files with torch.load(weights_only=True) and plain torch.load, and checks their
 * zips: all in one Python process, as importing torch takes seconds.
 */
export function loadWithTorch(...files: string[]): Promise<TorchLoad[]> {
  return runPython<TorchLoad[]>(LOAD_SCRIPT, files);
}
