import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { FitRequest, RUNTIME_OVERHEAD_BYTES, planMemory } from '../../src/engine/memoryPlan.js';
import { projectRoot } from '../helpers/paths.js';
import { MODEL_PATH } from '../helpers/server.js';

const GiB = 2 ** 30;
// Qwen2.5-VL-7B-Instruct: float32 33 GB, int8 about 9 GB, int4 about 5.5 GB; 28 layers, 4 KV heads of 128.
const seven: Pick<FitRequest, 'residentBytes' | 'kvBytesPerToken' | 'contextLength'> = {
  residentBytes: { none: 33.2e9, int8: 9.1e9, int4: 5.6e9 },
  kvBytesPerToken: 2 * 28 * 4 * 128 * 4,
  contextLength: 128000,
};
const machine = (gib: number) => ({ availableBytes: gib * GiB, totalBytes: 24 * GiB });

test('auto: a 7B model on a 24 GiB machine gets int8 and says why; float32 where it fits', () => {
  const p = planMemory({ ...seven, requested: 'auto', facts: machine(22) });
  assert.equal(p.mode, 'int8');
  assert.match(p.summary, /int8 weights, chosen because float32 would not fit/);
  assert.ok(p.kvTokens >= 32768, `KV cache ${p.kvTokens} tokens`);
  assert.equal(planMemory({ ...seven, requested: 'auto', facts: machine(200) }).mode, 'none');
  assert.equal(planMemory({ ...seven, requested: 'auto', facts: machine(13) }).mode, 'int4');
});

test('an explicit mode that cannot fit fails at once with the needed and available memory', () => {
  assert.throws(
    () => planMemory({ ...seven, requested: 'none', facts: machine(22) }),
    (e: Error) => /does not fit in memory with --quantization none: it needs 36\.\d GiB .* and 19\.8 GiB is available .*try --quantization int8 or int4/.test(e.message),
  );
  assert.throws(() => planMemory({ ...seven, requested: 'auto', facts: machine(4) }), /even with int4/);
});

test('the KV cache: --max-total-tokens wins, --mem-fraction-static gives it what the weights leave', () => {
  assert.equal(planMemory({ ...seven, requested: 'int8', maxTotalTokens: 5000, facts: machine(22) }).kvTokens, 5000);
  const p = planMemory({ ...seven, requested: 'int8', memFractionStatic: 0.8, facts: machine(22) });
  assert.equal(p.kvTokens, Math.floor((0.8 * 22 * GiB - 9.1e9 - RUNTIME_OVERHEAD_BYTES) / seven.kvBytesPerToken));
  // A large --max-total-tokens counts in the fit decision too.
  assert.equal(planMemory({ ...seven, requested: 'auto', maxTotalTokens: 110_000, facts: machine(22) }).mode, 'int4');
});

test('iris serve --quantization none on a model that cannot fit exits at once with the numbers', () => {
  const r = spawnSync(process.execPath, [`${projectRoot}/dist/src/cli/main.js`, 'serve', '--model-path', MODEL_PATH, '--port', '0', '--quantization', 'none', '--mem-fraction-static', '0.0001'], {
    encoding: 'utf8',
    env: { ...process.env, IRIS_HUGE_PAGES: '0' },
    timeout: 30_000,
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /iris: the model does not fit in memory with --quantization none: it needs [\d.]+ GiB .* and [\d.]+ GiB is available/);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('sliding-window layers count only up to their rings: the same memory holds more tokens', () => {
  // Gemma 3 4B: 34 layers of 4 KV heads of 256; 1 in 6 global. int8 weights about 4.6 GB.
  const perLayer = 2 * 4 * 256 * 4;
  const gemma = { residentBytes: { int8: 4.6e9 }, contextLength: 131072, requested: 'int8' as const, memFractionStatic: 0.8, facts: machine(22) };
  const allFull = planMemory({ ...gemma, kvBytesPerToken: 34 * perLayer });
  const cap = 16 * 65 * 16;
  const windowed = planMemory({ ...gemma, kvBytesPerToken: 6 * perLayer, windowBytesPerToken: 28 * perLayer, windowCapTokens: cap });
  const spare = 0.8 * 22 * GiB - 4.6e9 - RUNTIME_OVERHEAD_BYTES;
  assert.equal(allFull.kvTokens, Math.floor(spare / (34 * perLayer)));
  assert.equal(windowed.kvTokens, Math.floor(cap + (spare - cap * 34 * perLayer) / (6 * perLayer)));
  assert.ok(windowed.kvTokens > 3 * allFull.kvTokens, `${windowed.kvTokens} vs ${allFull.kvTokens}`);
  assert.match(windowed.summary, new RegExp(`sliding-window layers keeping ${cap} of them`));
});
