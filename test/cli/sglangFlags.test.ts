import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { pinoLevel } from '../../src/cli/sglangFlags.js';
import { projectRoot } from '../helpers/paths.js';
import { MODEL_PATH, getJson, startIris } from '../helpers/server.js';

test('log levels: SGLang names map to pino levels; unknown names are refused', () => {
  assert.equal(pinoLevel('warning'), 'warn');
  assert.equal(pinoLevel('critical'), 'fatal');
  assert.equal(pinoLevel('WARNING'), 'warn');
  assert.equal(pinoLevel('debug'), 'debug');
  assert.equal(pinoLevel('warn'), 'warn');
  assert.throws(() => pinoLevel('verbose'), /unknown log level verbose/);
});

test('a pasted SGLang launch line starts; GPU-only flags are ignored with one warning each', async () => {
  const server = await startIris([
    '--log-level', 'warning', '--tp-size', '1', '--enable-metrics', '--trust-remote-code',
    '--disable-cuda-graph', '--attention-backend', 'fa3', '--cuda-graph-max-bs', '8',
  ]);
  try {
    const r = await getJson(server.baseUrl, '/v1/models');
    assert.equal(r.status, 200);
    const warnings = server.stderr().split('\n').filter((l) => l.includes('ignoring'));
    assert.deepEqual(warnings.map((l) => /ignoring (--\S+):/.exec(l)?.[1]).sort(), ['--attention-backend', '--cuda-graph-max-bs', '--disable-cuda-graph']);
  } finally {
    await server.stop();
  }
});

function serveFails(args: string[]): string {
  const r = spawnSync(process.execPath, [`${projectRoot}/dist/src/cli/main.js`, 'serve', '--model-path', MODEL_PATH, '--port', '0', ...args], {
    encoding: 'utf8',
    env: { ...process.env, IRIS_HUGE_PAGES: '0' },
    timeout: 20_000,
  });
  assert.notEqual(r.status, 0, `expected failure for ${args.join(' ')}`);
  return r.stderr;
}

test('flags Iris cannot honour are errors that say why; unknown flags are named', () => {
  assert.match(serveFails(['--tp-size', '2']), /--tp-size must be 1/);
  assert.match(serveFails(['--tp', '4']), /--tp must be 1/);
  assert.match(serveFails(['--log-level', 'loud']), /unknown log level loud/);
  assert.match(serveFails(['--no-such-flag']), /unknown option '--no-such-flag'/);
  assert.match(serveFails(['--tool-call-parser', 'hermes']), /'hermes' is invalid.*qwen25, llama3, mistral/);
});
