import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SamplerState, sampleToken, topKIndices } from '../../src/engine/sampler.js';
import { DEFAULT_SAMPLING, SamplingParams, validateSampling } from '../../src/engine/samplingParams.js';

const logits = Float32Array.from([1.0, 3.0, 2.0, 0.5, 2.5, -1.0]);
const softmax = (x: ArrayLike<number>, t = 1) => {
  const m = Math.max(...Array.from(x));
  const e = Array.from(x, (v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

function draw(params: Partial<SamplingParams>, n: number, x = logits, prompt: number[] = []): number[] {
  const st = new SamplerState({ ...DEFAULT_SAMPLING, ...params }, prompt, [5]);
  const scratch = new Float32Array(x.length);
  return Array.from({ length: n }, () => {
    const t = sampleToken(x, st, scratch).tokenId;
    st.record(t);
    return t;
  });
}

function freq(xs: number[], V: number): number[] {
  const f = new Array(V).fill(0);
  for (const x of xs) f[x]++;
  return f.map((c) => c / xs.length);
}

test('temperature 0 and top_k 1 are greedy', () => {
  assert.deepEqual(draw({ temperature: 0 }, 5), [1, 1, 1, 1, 1]);
  assert.deepEqual(draw({ temperature: 1.5, topK: 1 }, 5), [1, 1, 1, 1, 1]);
});

test('temperature sampling follows softmax(logits / T); a seed makes it reproducible', () => {
  for (const t of [1, 0.5]) {
    const f = freq(draw({ temperature: t, seed: 7 }, 40000), logits.length);
    softmax(logits, t).forEach((p, i) => assert.ok(Math.abs(f[i]! - p) < 0.01, `T=${t} token ${i}: ${f[i]} vs ${p}`));
  }
  assert.deepEqual(draw({ temperature: 1, seed: 3 }, 50), draw({ temperature: 1, seed: 3 }, 50));
  assert.notDeepEqual(draw({ temperature: 1, seed: 3 }, 50), draw({ temperature: 1, seed: 4 }, 50));
});

test('top_k, top_p and min_p keep only the likeliest tokens, renormalised', () => {
  const k2 = freq(draw({ temperature: 1, topK: 2, seed: 1 }, 20000), logits.length);
  const p2 = softmax([3.0, 2.5]);
  assert.ok(Math.abs(k2[1]! - p2[0]!) < 0.015 && Math.abs(k2[4]! - p2[1]!) < 0.015);
  assert.equal(k2[0]! + k2[2]! + k2[3]! + k2[5]!, 0);
  // Probabilities sorted: 1 (.41), 4 (.25), 2 (.15), 0 (.06)...; top_p 0.6 keeps tokens 1 and 4.
  const tp = new Set(draw({ temperature: 1, topP: 0.6, seed: 2 }, 5000));
  assert.deepEqual([...tp].sort(), [1, 4]);
  // min_p 0.3: tokens with at least 0.3 x p(max): 1, 4, 2 (0.15/0.41 = 0.37), not 0 (0.06/0.41).
  const mp = new Set(draw({ temperature: 1, minP: 0.3, seed: 2 }, 5000));
  assert.deepEqual([...mp].sort(), [1, 2, 4]);
});

test('penalties: repetition divides positive logits of seen tokens, frequency/presence subtract per use', () => {
  // Token 1 in the prompt: repetition 2 halves its logit (3 -> 1.5), so token 4 (2.5) wins greedily.
  assert.equal(draw({ temperature: 0, repetitionPenalty: 2 }, 1, logits, [1])[0], 4);
  // Greedy with presence penalty 1.2: each used token loses 1.2 once, so the choice moves on.
  assert.deepEqual(draw({ temperature: 0, presencePenalty: 1.2 }, 3), [1, 4, 2]);
  // Frequency 0.8: token 1 drops by 0.8 per use: 3.0 -> 2.2 after one use (below 2.5).
  assert.deepEqual(draw({ temperature: 0, frequencyPenalty: 0.8 }, 2), [1, 4]);
});

test('min_new_tokens suppresses eos; logprobs are the raw log-softmax with top alternatives', () => {
  const eosFirst = Float32Array.from([0, 0, 0, 0, 0, 9]);
  assert.notEqual(draw({ temperature: 0, minNewTokens: 2 }, 1, eosFirst)[0], 5);
  const st = new SamplerState({ ...DEFAULT_SAMPLING, temperature: 0, topLogprobs: 3 }, [], [5]);
  const r = sampleToken(logits, st, new Float32Array(logits.length));
  const lsm = softmax(logits).map(Math.log);
  assert.ok(Math.abs(r.logprob! - lsm[1]!) < 1e-6);
  assert.deepEqual(r.top!.map((t) => t.tokenId), [1, 4, 2]);
  r.top!.forEach((t) => assert.ok(Math.abs(t.logprob - lsm[t.tokenId]!) < 1e-6));
});

test('topKIndices returns the k largest, largest first', () => {
  assert.deepEqual(topKIndices(logits, 3), [1, 4, 2]);
  assert.deepEqual(topKIndices(Float32Array.from([5, 5, 1]), 2), [0, 1]);
});

test('sampling parameters out of range are refused naming the field', () => {
  assert.throws(() => validateSampling({ ...DEFAULT_SAMPLING, topP: 0 }), /top_p/);
  assert.throws(() => validateSampling({ ...DEFAULT_SAMPLING, temperature: -1 }), /temperature/);
  assert.throws(() => validateSampling({ ...DEFAULT_SAMPLING, minNewTokens: 500, maxNewTokens: 10 }), /min_tokens/);
});
