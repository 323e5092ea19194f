import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { CommandEvaluator, parseCommandOutput, shellQuote } from '../../src/eval/command.js';
import { ingredientWeights } from '../../src/weights/candidate.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';
import { SYSTEM_PYTHON } from '../helpers/torch-python.js';

const dir = await tempDir();
const tools = path.join(dir, 'eval tools');
await mkdir(tools);
const checkpoint = await SafetensorsFile.open(await writeSafetensorsFile(path.join(dir, 'w.safetensors'), { w: { dtype: 'F32', shape: [1], values: [0.25] } }));
after(() => checkpoint.close());

/** An evaluation script as a user would write one: reads the candidate, prints its metrics. */
const scorer = path.join(tools, 'score.mjs');
await writeFile(
  scorer,
  `import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const headerLength = Number(bytes.readBigUInt64LE(0));
const w = bytes.readFloatLE(8 + headerLength);
console.log('evaluating', process.argv[2]);
console.log(JSON.stringify({ accuracy: 1 - Math.abs(w - 0.5), note: 'ok' }));
`,
);

const evaluator = (command: string, timeoutSeconds?: number) =>
  new CommandEvaluator({ command, metric: 'accuracy', reference: checkpoint, ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }) });

describe('parseCommandOutput', () => {
  it('takes the last non-empty line as JSON metrics or a bare number', () => {
    assert.deepEqual(parseCommandOutput('loading\n{"accuracy": 0.5, "loss": 1.2, "name": "x"}\n\n', 'accuracy'), { accuracy: 0.5, loss: 1.2 });
    assert.deepEqual(parseCommandOutput('0.75\n', 'top5'), { top5: 0.75 });
  });

  it('says what is wrong with output it cannot use', () => {
    assert.throws(() => parseCommandOutput('', 'accuracy'), /printed nothing on stdout/);
    assert.throws(() => parseCommandOutput('done!\n', 'accuracy'), /its last line is neither JSON nor a number: "done!"/);
    assert.throws(() => parseCommandOutput('{"f1": 0.5}', 'accuracy'), /its output has no numeric "accuracy" \(it has: f1\); pick one with --metric/);
    assert.throws(() => parseCommandOutput('nan', 'accuracy'), /its last line is neither JSON nor a number: "nan"/, 'Python prints NaN, never nan');
    assert.throws(() => parseCommandOutput('{"accuracy": NaNs}', 'accuracy'), /its last line is neither JSON nor a number: "\{\\"accuracy\\": NaNs\}"/);
  });

  it("takes NaN, Infinity and -Infinity as Python's json.dumps writes them, bare or in an object", () => {
    const nan = parseCommandOutput('NaN\n', 'eval_loss');
    assert.ok(Number.isNaN(nan.eval_loss));
    const metrics = parseCommandOutput('{"eval_loss": NaN, "eval_accuracy": 0.5, "note": "NaN, Infinity", "low": -Infinity, "high":Infinity}', 'eval_loss');
    assert.deepEqual(Object.keys(metrics), ['eval_loss', 'eval_accuracy', 'low', 'high']);
    assert.ok(Number.isNaN(metrics.eval_loss));
    assert.equal(metrics.eval_accuracy, 0.5);
    assert.equal(metrics.low, -Infinity);
    assert.equal(metrics.high, Infinity);
    assert.deepEqual(parseCommandOutput('-Infinity', 'loss'), { loss: -Infinity });
  });
});

describe('shellQuote', () => {
  it('makes spaces, quotes and $(...) plain data', () => {
    assert.equal(shellQuote(`a b'c$(x)`), `'a b'\\''c$(x)'`);
  });
});

describe('CommandEvaluator', () => {
  it('never runs text of --work-dir or --val, even when the template quotes {ckpt} and the work dir holds "{data}"', async () => {
    const pwned = path.join(dir, 'pwned');
    // A folder name cannot hold a slash: the injected command finds its target in the environment.
    process.env.SOUP_TEST_PWNED = pwned;
    const workDir = path.join(dir, 'work $(touch "$SOUP_TEST_PWNED") {data} `touch "$SOUP_TEST_PWNED"`');
    await mkdir(workDir);
    const data = `val"; touch ${pwned}; echo "'; touch ${pwned}; '`;
    const command = `node ${shellQuote(scorer)} "{ckpt}" '{data}'`;
    const result = await new CommandEvaluator({ command, metric: 'accuracy', reference: checkpoint, workDir, data }).evaluate(ingredientWeights(checkpoint));
    assert.deepEqual(result.metrics, { accuracy: 0.75 });
    assert.equal(existsSync(pwned), false, 'text from the paths ran as a command');
  });

  it('refuses, before writing anything, a template with {ckpt} inside backquotes', () => {
    assert.throws(
      () => evaluator('python eval.py `realpath {ckpt}`'),
      /^UsageError: --eval-cmd: \{ckpt\} stands inside `...`, where a path cannot be quoted safely$/,
    );
  });

  it('writes the candidate as a temporary checkpoint, runs the command on it, and removes it', async () => {
    // A private temporary folder: other test files run evaluations at the same time.
    const privateTmp = path.join(dir, 'tmp');
    await mkdir(privateTmp);
    const previous = process.env.TMPDIR;
    process.env.TMPDIR = privateTmp;
    try {
      const result = await evaluator(`node ${shellQuote(scorer)} {ckpt}`).evaluate(ingredientWeights(checkpoint));
      assert.deepEqual(result.metrics, { accuracy: 0.75 });
      assert.deepEqual(await readdir(privateTmp), []);
    } finally {
      if (previous === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previous;
    }
  });

  it('hands the command a .pt file that torch.load(weights_only=True) reads when the ingredients are PyTorch checkpoints', async () => {
    // The reader of .pt files is another module: a checkpoint that says it is one is enough here.
    const torchLike = Object.assign(Object.create(checkpoint) as Checkpoint, { format: 'pytorch' as const });
    const script =
      "import sys, torch; p = sys.argv[1]; w = torch.load(p, weights_only=True)['w'].item(); print(json.dumps({'accuracy': 1 - abs(w - 0.5), 'pt': int(p.endswith('.pt'))}))";
    const command = `${SYSTEM_PYTHON} -c ${shellQuote(`import json; ${script}`)} {ckpt}`;
    const result = await new CommandEvaluator({ command, metric: 'accuracy', reference: torchLike }).evaluate(ingredientWeights(checkpoint));
    assert.deepEqual(result.metrics, { accuracy: 0.75, pt: 1 });
  });

  it('reports a failing command with its exit code and the end of its stderr', async () => {
    await assert.rejects(evaluator(`echo "CUDA out of memory" >&2; exit 3 # {ckpt}`).evaluate(ingredientWeights(checkpoint)), {
      message: 'evaluation command `echo "CUDA out of memory" >&2; exit 3 # {ckpt}` exited with code 3; stderr ends: CUDA out of memory',
    });
  });

  it('reports output it cannot parse, naming the command', async () => {
    await assert.rejects(
      evaluator('echo all good {ckpt}').evaluate(ingredientWeights(checkpoint)),
      /evaluation command `echo all good \{ckpt\}`: its last line is neither JSON nor a number: "all good '?\/.*soup-candidate-/,
    );
  });

  it('stops a command that floods stdout, and refuses binary output', async () => {
    await assert.rejects(evaluator('head -c 40000000 /dev/zero; echo 0.5 # {ckpt}').evaluate(ingredientWeights(checkpoint)), {
      message:
        'evaluation command `head -c 40000000 /dev/zero; echo 0.5 # {ckpt}` printed more than 16 MB on stdout; it should print its metrics as the last line',
    });
    await assert.rejects(
      evaluator("printf '\\000\\001\\377\\n' # {ckpt}").evaluate(ingredientWeights(checkpoint)),
      /its last line is neither JSON nor a number: "\\u0000\\u0001/,
    );
  });

  it('refuses a NaN score, whether bare or in JSON', async () => {
    await assert.rejects(evaluator('echo nan # {ckpt}').evaluate(ingredientWeights(checkpoint)), /its last line is neither JSON nor a number: "nan"/);
    await assert.rejects(evaluator(`echo '{"accuracy": null}' # {ckpt}`).evaluate(ingredientWeights(checkpoint)), /it reported accuracy = null, not a number/);
  });

  it('kills a command that runs past its timeout', async () => {
    const started = Date.now();
    await assert.rejects(evaluator('sleep 30; echo 1 {ckpt}', 0.3).evaluate(ingredientWeights(checkpoint)), /timed out after 0\.3 s/);
    assert.ok(Date.now() - started < 10_000);
  });

  it('stops the command when interrupted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    await assert.rejects(evaluator('sleep 30; echo 1 {ckpt}').evaluate(ingredientWeights(checkpoint), controller.signal), { name: 'InterruptedError' });
  });
});
