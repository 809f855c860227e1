import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { schemaViolation } from '../helpers/jsonSchemaValidate.js';
import { IrisServer, assertError, chatBody, dataUri, makeImages, postJson, postStream, readSse, startIris } from '../helpers/server.js';

/**
 * Grammar-constrained output on a random-weight checkpoint: its free output is noise, so only
 * the constraint can make it parse and conform. Many seeds, with and without an image,
 * streamed and not.
 */

const SCHEMAS: Record<string, Record<string, unknown>> = {
  receipt: {
    type: 'object',
    properties: {
      merchant: { type: 'string', minLength: 1, maxLength: 12 },
      total: { type: 'number', minimum: 0, maximum: 1000 },
      items: {
        type: 'array',
        minItems: 1,
        maxItems: 3,
        items: { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, qty: { type: 'integer', minimum: 1, maximum: 5 } }, required: ['name', 'qty'], additionalProperties: false },
      },
      paid: { type: 'boolean' },
      note: { type: ['string', 'null'], maxLength: 5 },
    },
    required: ['merchant', 'total', 'items', 'paid', 'note'],
    additionalProperties: false,
  },
  label: { type: 'object', properties: { label: { enum: ['cat', 'dog', 'bird'] }, confidence: { type: 'integer', minimum: 0, maximum: 100 } }, required: ['label', 'confidence'], additionalProperties: false },
  shapes: {
    $defs: {
      circle: { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['kind', 'r'], additionalProperties: false },
      square: { type: 'object', properties: { kind: { const: 'square' }, side: { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 } }, required: ['kind', 'side'], additionalProperties: false },
    },
    type: 'object',
    properties: { shapes: { type: 'array', minItems: 2, maxItems: 4, items: { anyOf: [{ $ref: '#/$defs/circle' }, { $ref: '#/$defs/square' }] } } },
    required: ['shapes'],
    additionalProperties: false,
  },
  numbers: { type: 'array', items: { type: 'integer', minimum: -5, maximum: 5 }, minItems: 2, maxItems: 4 },
  ranges: {
    type: 'object',
    properties: {
      a: { type: 'integer', minimum: -17, maximum: 123 },
      b: { type: 'number', minimum: -3, exclusiveMaximum: 7 },
      c: { type: 'integer', minimum: 3 },
      d: { type: 'number', exclusiveMinimum: 0, maximum: 10 },
      e: { type: 'integer', maximum: -40 },
    },
    required: ['a', 'b', 'c'],
    additionalProperties: false,
  },
  code: { type: 'object', properties: { code: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{2}$' }, tags: { type: 'array', items: { type: 'string', maxLength: 4 }, maxItems: 2 } }, required: ['code', 'tags'], additionalProperties: false },
};

let iris: IrisServer;
let image: string;

before(async () => {
  iris = await startIris();
  image = dataUri((await makeImages()).png);
});

after(async () => {
  await iris?.stop();
});

const responseFormat = (name: string) => ({ type: 'json_schema', json_schema: { name, schema: SCHEMAS[name], strict: true } });

/** The answer's text and finish reason, streamed or not. */
async function ask(body: Record<string, unknown>, stream: boolean): Promise<Array<{ text: string; finish: string }>> {
  if (!stream) {
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', body);
    assert.equal(r.status, 200, r.text);
    return r.json.choices.map((c: any) => ({ text: c.message.content, finish: c.finish_reason }));
  }
  const res = await postStream(iris.baseUrl, '/v1/chat/completions', { ...body, stream: true });
  assert.equal(res.status, 200);
  const out: Array<{ text: string; finish: string }> = [];
  for (const ev of await readSse(res)) {
    if (ev === '[DONE]') continue;
    for (const c of JSON.parse(ev).choices) {
      out[c.index] ??= { text: '', finish: '' };
      out[c.index]!.text += c.delta?.content ?? '';
      if (c.finish_reason) out[c.index]!.finish = c.finish_reason;
    }
  }
  return out;
}

describe('response_format json_schema: every output parses, conforms and stops', () => {
  for (const name of Object.keys(SCHEMAS)) {
    test(name, async () => {
      for (let seed = 0; seed < 6; seed++) {
        const parts = seed % 2 ? [{ url: image }, 'Describe the picture as JSON.'] : ['Answer in JSON.'];
        const body = chatBody(parts, { max_tokens: 400, temperature: 1, seed, response_format: responseFormat(name), ...(seed === 4 ? { n: 2 } : {}) });
        for (const { text, finish } of await ask(body, seed % 3 === 0)) {
          assert.equal(finish, 'stop', `seed ${seed}: ${text}`);
          let value: unknown;
          assert.doesNotThrow(() => (value = JSON.parse(text)), `seed ${seed}: not JSON: ${text}`);
          assert.equal(schemaViolation(value, SCHEMAS[name]), null, `seed ${seed}: ${text}`);
          assert.ok(!/[\r\n\t ]{2}/.test(text), `whitespace stays compact: ${JSON.stringify(text)}`);
        }
      }
    });
  }
});

test('json_object: any JSON object, compact', async () => {
  for (let seed = 0; seed < 4; seed++) {
    const [{ text, finish }] = await ask(chatBody(['JSON please'], { max_tokens: 2000, temperature: 0.7, seed, response_format: { type: 'json_object' } }), seed % 2 === 1);
    assert.equal(finish, 'stop', text);
    const value = JSON.parse(text!);
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), text);
  }
});

test('SGLang regex and ebnf, on chat, completions and /generate: outputs match in full', async () => {
  const regex = '(cat|dog)-[0-9]{2,3}';
  const ebnf = 'root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]?';
  for (let seed = 0; seed < 4; seed++) {
    const chat = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['go'], { max_tokens: 60, temperature: 1, seed, regex }));
    assert.equal(chat.json.choices[0].finish_reason, 'stop');
    assert.match(chat.json.choices[0].message.content, new RegExp(`^${regex}$`));
    const comp = await postJson(iris.baseUrl, '/v1/completions', { prompt: 'x', max_tokens: 80, temperature: 1, seed, ebnf });
    assert.equal(comp.json.choices[0].finish_reason, 'stop', comp.text);
    assert.match(comp.json.choices[0].text, /^\([1-9][0-9]?(\+[1-9][0-9]?)*\)$/);
    const gen = await postJson(iris.baseUrl, '/generate', { text: 'y', sampling_params: { max_new_tokens: 60, temperature: 1, seed, regex } });
    assert.equal(gen.status, 200, gen.text);
    assert.match(gen.json.text, new RegExp(`^${regex}$`));
    const js = await postJson(iris.baseUrl, '/generate', { text: 'y', sampling_params: { max_new_tokens: 200, temperature: 1, seed, json_schema: JSON.stringify(SCHEMAS.label) } });
    assert.equal(schemaViolation(JSON.parse(js.json.text), SCHEMAS.label), null, js.json.text);
  }
});

test('constraints hold with stop strings, penalties, logprobs and ignore_eos', async () => {
  const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['JSON'], { max_tokens: 300, temperature: 1, seed: 3, frequency_penalty: 1.5, repetition_penalty: 1.3, logprobs: true, top_logprobs: 3, response_format: responseFormat('label') }));
  const c = r.json.choices[0];
  assert.equal(schemaViolation(JSON.parse(c.message.content), SCHEMAS.label), null);
  assert.equal(c.logprobs.content.length, r.json.usage.completion_tokens);
  // ignore_eos: the grammar still ends the output.
  const g = await postJson(iris.baseUrl, '/generate', { text: 'z', sampling_params: { max_new_tokens: 200, temperature: 1, seed: 5, ignore_eos: true, json_schema: JSON.stringify(SCHEMAS.label) } });
  assert.equal(g.json.meta_info.finish_reason.type, 'stop', g.text);
  // A stop string inside the JSON ends it early, as the client asked.
  const s = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['JSON'], { max_tokens: 300, temperature: 0, stop: ['"label"'], response_format: responseFormat('label') }));
  assert.equal(s.json.choices[0].message.content, '{');
});

test('the openai client reads message.parsed', async () => {
  const client = new OpenAI({ baseURL: `${iris.baseUrl}/v1`, apiKey: 'None', maxRetries: 0 });
  const r = await client.chat.completions.parse({
    model: 'x',
    messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: image } }, { type: 'text', text: 'what is it?' }] }],
    max_tokens: 300,
    temperature: 1,
    seed: 11,
    response_format: { type: 'json_schema', json_schema: { name: 'label', schema: SCHEMAS.label!, strict: true } },
  });
  const parsed = r.choices[0]!.message.parsed as unknown as { label: string; confidence: number };
  assert.ok(['cat', 'dog', 'bird'].includes(parsed.label));
  assert.equal(schemaViolation(parsed, SCHEMAS.label), null);
});

describe('bad constraints are 400s that name the field, and the server goes on', () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['two constraints', { response_format: { type: 'json_object' }, regex: 'a+' }, ['at most one', 'response_format', 'regex']],
    ['unknown response_format type', { response_format: { type: 'xml' } }, ['response_format', 'xml']],
    ['json_schema without an object', { response_format: { type: 'json_schema' } }, ['response_format.json_schema']],
    ['unsupported keyword', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { not: { type: 'string' } } } } } } }, ['response_format', '"not"', '#/properties/a/not']],
    ['bad type', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'foo' } } } }, ['response_format', 'foo']],
    ['allOf of two schemas (xgrammar ignores it)', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { allOf: [{ type: 'integer', minimum: 3 }, { maximum: 9 }] } } } }, ['allOf', '#/allOf']],
    ['pattern with maxLength (xgrammar drops the length)', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^[a-z]+$', maxLength: 3 } } } }, ['pattern', 'maxLength']],
    ['an unknown format', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'color' } } } }, ['format', 'color']],
    ['a required name outside properties', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'integer' } }, required: ['z'] } } } }, ['"z"', 'properties']],
    ['a string bound that would take minutes to compile', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', maxLength: 1000 } } } }, ['maxLength', 'above 256']],
    ['a non-integer bound on a number', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'number', minimum: 0.5 } } } }, ['whole numbers', '0.5']],
    ['bad regex', { regex: '(ab' }, ['regex', 'parenthesis']],
    ['bad ebnf', { ebnf: 'root ::= "a" | ' }, ['ebnf', 'EBNF']],
  ];
  for (const [name, extra, fragments] of cases) {
    test(name, async () => {
      const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 3, ...extra }));
      assertError(r, 400, fragments);
      const s = await postStream(iris.baseUrl, '/v1/chat/completions', { ...chatBody(['hi'], { max_tokens: 3, ...extra }), stream: true });
      assert.equal(s.status, 400, 'a streamed request fails before its stream starts');
    });
  }
  test('/generate: an invalid json_schema string', async () => {
    assertError(await postJson(iris.baseUrl, '/generate', { text: 'a', sampling_params: { json_schema: '{oops' } }), 400, ['json_schema', 'JSON']);
  });
  test('after them, constrained and free requests still work', async () => {
    const r = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 200, temperature: 1, seed: 1, response_format: responseFormat('label') }));
    assert.equal(schemaViolation(JSON.parse(r.json.choices[0].message.content), SCHEMAS.label), null);
    const free = await postJson(iris.baseUrl, '/v1/chat/completions', chatBody(['hi'], { max_tokens: 3 }));
    assert.equal(free.status, 200);
  });
});
