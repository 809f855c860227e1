import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidRequestError } from '../../src/errors.js';
import { ToolRequestError, validateTools } from '../../src/tools/validate.js';

const weather = { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
const time = { type: 'function', function: { name: 'get-time_2' } };

function rejects(fn: () => unknown, param: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ToolRequestError, String(e));
    assert.ok(e instanceof InvalidRequestError);
    assert.equal(e.status, 400);
    assert.equal(e.param, param);
    assert.match(e.message, pattern);
    return true;
  });
}

test('valid requests and defaults', () => {
  assert.deepEqual(validateTools(undefined, undefined, undefined), { tools: [], choice: 'none', parallel: true });
  assert.deepEqual(validateTools([], null, null), { tools: [], choice: 'none', parallel: true });
  assert.deepEqual(validateTools(undefined, 'auto', false), { tools: [], choice: 'auto', parallel: false });
  const v = validateTools([weather, time], undefined, undefined);
  assert.deepEqual(v, {
    tools: [{ name: 'get_weather', description: 'Weather for a city', parameters: weather.function.parameters }, { name: 'get-time_2' }],
    choice: 'auto',
    parallel: true,
  });
  assert.equal(validateTools([weather], 'none', true).choice, 'none');
  assert.equal(validateTools([weather], 'required', true).choice, 'required');
  assert.deepEqual(validateTools([weather, time], { type: 'function', function: { name: 'get-time_2' } }, false), { tools: v.tools, choice: { name: 'get-time_2' }, parallel: false });
  assert.equal(validateTools([{ type: 'function', function: { name: 'x'.repeat(64) } }], undefined, undefined).tools[0]!.name.length, 64);
});

test('bad tools', () => {
  rejects(() => validateTools({ type: 'function' }, undefined, undefined), 'tools', /tools must be an array/);
  rejects(() => validateTools('get_weather', undefined, undefined), 'tools', /tools must be an array/);
  rejects(() => validateTools([null], undefined, undefined), 'tools', /tools\[0\] must be an object/);
  rejects(() => validateTools([weather, { type: 'retrieval', function: { name: 'x' } }], undefined, undefined), 'tools', /tools\[1\]\.type must be "function", got "retrieval"/);
  rejects(() => validateTools([{ function: { name: 'x' } }], undefined, undefined), 'tools', /tools\[0\]\.type must be "function"/);
  rejects(() => validateTools([{ type: 'function' }], undefined, undefined), 'tools', /tools\[0\]\.function must be an object/);
  rejects(() => validateTools([{ type: 'function', function: { description: 'no name' } }], undefined, undefined), 'tools', /tools\[0\]\.function\.name must be a string/);
  rejects(() => validateTools([{ type: 'function', function: { name: 42 } }], undefined, undefined), 'tools', /name must be a string, got 42/);
  for (const name of ['', 'get weather', 'get.weather', 'wetter_für', 'x'.repeat(65)]) {
    rejects(() => validateTools([{ type: 'function', function: { name } }], undefined, undefined), 'tools', /1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes/);
  }
  for (const parameters of ['{}', [], 3, true]) {
    rejects(() => validateTools([{ type: 'function', function: { name: 'f', parameters } }], undefined, undefined), 'tools', /parameters must be a JSON schema object/);
  }
  rejects(() => validateTools([{ type: 'function', function: { name: 'f', description: 7 } }], undefined, undefined), 'tools', /description must be a string/);
  rejects(() => validateTools([weather, time, weather], undefined, undefined), 'tools', /tools\[2\]\.function\.name "get_weather" repeats/);
});

test('bad tool_choice and parallel_tool_calls', () => {
  rejects(() => validateTools([weather], 'any', undefined), 'tool_choice', /tool_choice must be "none", "auto", "required" or \{"type": "function"/);
  rejects(() => validateTools([weather], { type: 'function', name: 'get_weather' }, undefined), 'tool_choice', /tool_choice must be/);
  rejects(() => validateTools([weather], { type: 'function', function: {} }, undefined), 'tool_choice', /tool_choice must be/);
  rejects(() => validateTools([weather], 3, undefined), 'tool_choice', /got 3/);
  rejects(() => validateTools([weather], { type: 'function', function: { name: 'get_time' } }, undefined), 'tool_choice', /names function "get_time", which is not in tools \(get_weather\)/);
  rejects(() => validateTools(undefined, 'required', undefined), 'tool_choice', /needs tools, but the request has none/);
  rejects(() => validateTools([], { type: 'function', function: { name: 'f' } }, undefined), 'tool_choice', /needs tools/);
  rejects(() => validateTools([weather], 'auto', 'yes'), 'parallel_tool_calls', /parallel_tool_calls must be a boolean, got "yes"/);
  rejects(() => validateTools([weather], 'auto', 1), 'parallel_tool_calls', /must be a boolean/);
});
