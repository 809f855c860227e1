import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { metricTypes, parsePrometheus, sampleValue } from '../helpers/prometheus.js';
import { SGLANG_METRIC_NAMES } from '../../src/server/sglangMetrics.js';
import { IrisServer, chatBody, postJson, startIris, waitFor } from '../helpers/server.js';

// Two replicas of one model, as an InferencePool would run them, each allowed 2 running requests.
const MODEL = 'iris-replica-test';
const MAX_RUNNING = 2;
const ARGS = ['--served-model-name', MODEL, '--max-running-requests', String(MAX_RUNNING), '--enable-metrics'];
const L = { model_name: MODEL };

let a: IrisServer;
let b: IrisServer;

before(async () => {
  [a, b] = await Promise.all([startIris(ARGS), startIris(ARGS)]);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

interface Load {
  running: number;
  queued: number;
  tokenUsage: number;
  cacheHitRate: number;
  genThroughput: number;
  promptTokens: number;
  generationTokens: number;
  ttftCount: number;
  itlCount: number;
  e2eCount: number;
}

/** Reads a replica's load the way the endpoint picker does: from /metrics, by SGLang's names. */
async function load(s: IrisServer): Promise<Load> {
  const samples = parsePrometheus(await (await fetch(`${s.baseUrl}/metrics`)).text());
  const v = (name: string) => sampleValue(samples, name, L);
  return {
    running: v('sglang:num_running_reqs'),
    queued: v('sglang:num_queue_reqs'),
    tokenUsage: v('sglang:token_usage'),
    cacheHitRate: v('sglang:cache_hit_rate'),
    genThroughput: v('sglang:gen_throughput'),
    promptTokens: v('sglang:prompt_tokens_total'),
    generationTokens: v('sglang:generation_tokens_total'),
    ttftCount: v('sglang:time_to_first_token_seconds_count'),
    itlCount: v('sglang:inter_token_latency_seconds_count'),
    e2eCount: v('sglang:e2e_request_latency_seconds_count'),
  };
}

/** The picker's choice: the fewest waiting, then the fewest running, then the least KV in use. */
async function pick(replicas: IrisServer[]): Promise<{ chosen: IrisServer; loads: Load[] }> {
  const loads = await Promise.all(replicas.map(load));
  let best = 0;
  for (let i = 1; i < replicas.length; i++) {
    const x = loads[i]!;
    const y = loads[best]!;
    if (x.queued < y.queued || (x.queued === y.queued && (x.running < y.running || (x.running === y.running && x.tokenUsage < y.tokenUsage)))) best = i;
  }
  return { chosen: replicas[best]!, loads };
}

const longChat = (i: number, maxTokens: number) => chatBody([`request ${i}: tell a long story`], { max_tokens: maxTokens, ignore_eos: true, temperature: 0 });

describe('SGLang metrics and two replicas behind an endpoint picker', () => {
  test('the SGLang series exist at start, labelled with the model name, with the right types, all 0 at idle', async () => {
    const text = await (await fetch(`${a.baseUrl}/metrics`)).text();
    const types = metricTypes(text);
    const want: Record<string, string> = {
      'sglang:num_running_reqs': 'gauge',
      'sglang:num_queue_reqs': 'gauge',
      'sglang:token_usage': 'gauge',
      'sglang:cache_hit_rate': 'gauge',
      'sglang:gen_throughput': 'gauge',
      'sglang:prompt_tokens_total': 'counter',
      'sglang:generation_tokens_total': 'counter',
      'sglang:time_to_first_token_seconds': 'histogram',
      'sglang:inter_token_latency_seconds': 'histogram',
      'sglang:e2e_request_latency_seconds': 'histogram',
      'sglang:cache_config_info': 'gauge',
    };
    assert.deepEqual(Object.keys(want).sort(), [...SGLANG_METRIC_NAMES].sort(), 'every name the deploy manifests may use is checked here');
    for (const [name, type] of Object.entries(want)) assert.equal(types.get(name), type, name);
    // The KV cache's shape, as labels, agrees with /get_server_info.
    const info = (await (await fetch(`${a.baseUrl}/get_server_info`)).json()) as { kv_cache: { page_size: number; total_pages: number } };
    const samples = parsePrometheus(text);
    assert.equal(sampleValue(samples, 'sglang:cache_config_info', { ...L, page_size: String(info.kv_cache.page_size), num_pages: String(info.kv_cache.total_pages) }), 1);
    // Iris's own names stay next to them.
    assert.equal(types.get('iris_num_running_reqs'), 'gauge');
    const l = await load(a);
    assert.deepEqual(l, { running: 0, queued: 0, tokenUsage: 0, cacheHitRate: 0, genThroughput: 0, promptTokens: 0, generationTokens: 0, ttftCount: 0, itlCount: 0, e2eCount: 0 });
  });

  test('under load: running never above --max-running-requests, queued = the rest, counters add up, all back to 0 at idle', async () => {
    const before = await load(a);
    const N = 6;
    const pending = Array.from({ length: N }, (_, i) => postJson(a.baseUrl, '/v1/chat/completions', longChat(i, 120)));
    let done = 0;
    const finished = Promise.all(pending.map((p) => p.then((r) => (done++, r))));
    const seen: Load[] = [];
    let settled = false;
    void finished.then(() => (settled = true));
    while (!settled) {
      const doneBefore = done;
      const l = await load(a);
      seen.push(l);
      assert.ok(l.running <= MAX_RUNNING, `running ${l.running} > ${MAX_RUNNING}`);
      // Requests still in flight when the scrape began are running, waiting, or not yet in the engine.
      assert.ok(l.running + l.queued <= N - doneBefore, `running ${l.running} + queued ${l.queued} > ${N - doneBefore} in flight`);
      if (l.running > 0) assert.ok(l.tokenUsage > 0 && l.tokenUsage <= 1, `token_usage ${l.tokenUsage} while running`);
      await new Promise((r) => setTimeout(r, 15));
    }
    const results = await finished;
    for (const r of results) assert.equal(r.status, 200);
    assert.ok(seen.some((l) => l.running === MAX_RUNNING && l.queued >= 1), `never saw ${MAX_RUNNING} running with a queue: ${JSON.stringify(seen.map((l) => [l.running, l.queued]))}`);
    assert.ok(seen.some((l) => l.genThroughput > 0), 'gen_throughput rose while decoding');

    const idle = await load(a);
    assert.equal(idle.running, 0);
    assert.equal(idle.queued, 0);
    assert.equal(idle.tokenUsage, 0);
    const usage = results.map((r) => r.json.usage as { prompt_tokens: number; completion_tokens: number });
    assert.equal(idle.promptTokens - before.promptTokens, usage.reduce((s, u) => s + u.prompt_tokens, 0));
    assert.equal(idle.generationTokens - before.generationTokens, N * 120);
    assert.equal(idle.ttftCount - before.ttftCount, N);
    assert.equal(idle.e2eCount - before.e2eCount, N);
    assert.equal(idle.itlCount - before.itlCount, N * 119, 'one gap per token after the first');
    // The throughput gauge looks back 5 s: it falls to 0 once decoding stops.
    await waitFor(async () => (await load(a)).genThroughput === 0 || undefined, 10_000, 250);
  });

  test('the picker sends to the less loaded replica, and both replicas\' gauges move as it does', async () => {
    // Requests long enough to outlast the checks; they are cancelled at the end.
    const cancel = new AbortController();
    const send = (s: IrisServer, i: number) => postJson(s.baseUrl, '/v1/chat/completions', longChat(i, 3000), { signal: cancel.signal }).catch((e: Error) => e);
    // Replica a gets busy first: 4 long requests, 2 running and 2 waiting.
    const busy = Array.from({ length: 4 }, (_, i) => send(a, 100 + i));
    await waitFor(async () => {
      const l = await load(a);
      return (l.running === MAX_RUNNING && l.queued === 2) || undefined;
    }, 20_000, 10);

    // The picker now routes two requests: both to b, whose gauges then show them.
    const routed: Array<Promise<unknown>> = [];
    for (let i = 0; i < 2; i++) {
      const { chosen, loads } = await pick([a, b]);
      assert.equal(chosen, b, `request ${i} should go to b: loads ${JSON.stringify(loads.map((l) => [l.running, l.queued]))}`);
      routed.push(send(chosen, 200 + i));
      // Wait until b counts it, as the picker's next scrape would.
      await waitFor(async () => (await load(b)).running === i + 1 || undefined, 10_000, 10);
    }
    const [la, lb] = [await load(a), await load(b)];
    assert.deepEqual([la.running, la.queued], [2, 2]);
    assert.deepEqual([lb.running, lb.queued], [2, 0]);
    assert.ok(lb.tokenUsage > 0 && la.tokenUsage > 0);
    // Both full; a has the longer queue, so the next one still goes to b, where it waits.
    const third = await pick([a, b]);
    assert.equal(third.chosen, b);
    routed.push(send(b, 300));
    await waitFor(async () => (await load(b)).queued === 1 || undefined, 10_000, 10);

    // Cancelled requests leave the engines: every gauge returns to 0.
    cancel.abort();
    await Promise.all([...busy, ...routed]);
    for (const s of [a, b]) {
      const l = await waitFor(async () => {
        const x = await load(s);
        return (x.running === 0 && x.queued === 0) ? x : undefined;
      }, 10_000, 20);
      assert.equal(l?.tokenUsage, 0, `${s.baseUrl}: no KV held at idle`);
    }
  });

  test('prefix affinity: a repeated prompt on the same replica is a cache hit there, and not on the other', async () => {
    const body = chatBody(['a prompt long enough to fill a few KV pages '.repeat(12)], { max_tokens: 4, temperature: 0 });
    const first = await postJson(b.baseUrl, '/v1/chat/completions', body);
    assert.equal(first.status, 200);
    const hitBefore = (await load(b)).cacheHitRate;
    const again = await postJson(b.baseUrl, '/v1/chat/completions', body);
    const cachedAgain = again.json.usage.prompt_tokens_details.cached_tokens as number;
    assert.ok(cachedAgain >= again.json.usage.prompt_tokens / 2, `most of the prompt served from the prefix cache (${cachedAgain})`);
    assert.ok((await load(b)).cacheHitRate > hitBefore, 'cache_hit_rate rose on the replica that had the prompt');
    const elsewhere = await postJson(a.baseUrl, '/v1/chat/completions', body);
    // Only the chat template's opening, shared with earlier requests, is cached on the other one.
    const cachedElsewhere = elsewhere.json.usage.prompt_tokens_details.cached_tokens as number;
    assert.ok(cachedElsewhere < cachedAgain / 2, `the other replica had to prefill most of it (${cachedElsewhere} cached there, ${cachedAgain} on b)`);
  });
});
