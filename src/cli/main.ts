#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { IrisError } from '../errors.js';
import { runGenerate } from './generate.js';

function int(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got ${v}`);
  return n;
}

function float(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got ${v}`);
  return n;
}

const program = new Command();
program.name('iris').description('Iris: an OpenAI-compatible vision-language model engine');

program
  .command('generate')
  .description('Answer one prompt about zero or more images, then exit')
  .requiredOption('--model-path <dir>', 'Hugging Face model folder (config.json, *.safetensors, tokenizer files)')
  .option('--image <file>', 'an image (path, URL or data URI); repeat for several, in order', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .requiredOption('--prompt <text>', 'the user message text; the images come before it in the turn')
  .option('--max-tokens <n>', 'largest number of tokens to generate', int, 128)
  .option('--temperature <t>', '0 for greedy; default from the model generation_config.json', float)
  .option('--top-p <p>', 'nucleus sampling mass', float)
  .option('--top-k <k>', 'sample among the k likeliest tokens', int)
  .option('--seed <n>', 'seed for reproducible sampling', int)
  .option('--top-logprobs <k>', 'report logprobs of each token and its k likeliest alternatives', int)
  .option('--chat-template <file>', 'a chat template file to use instead of the model\'s')
  .option('--threads <n>', 'compute threads (default: ONNX Runtime chooses)', int)
  .option('--json', 'print one JSON object with text, token ids, usage and logprobs')
  .action(async (opts) => {
    await runGenerate(opts);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  const msg = e instanceof IrisError ? e.message : e instanceof Error ? e.message : String(e);
  process.stderr.write(`iris: ${msg}\n`);
  process.exit(1);
});
