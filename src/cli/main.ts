#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_IMAGE_MAX_TOKENS } from '../engine/engine.js';
import { IrisError } from '../errors.js';
import { runChat } from './chat.js';
import { runGenerate } from './generate.js';
import { runServe } from './serve.js';
import { BUILTIN_MODEL_NAME, builtinModelPath } from './builtinModel.js';
import { followParent, relaunchWithHugePages } from './hugePages.js';
import { addSglangFlags, ignoredFlagWarnings, pinoLevel } from './sglangFlags.js';
import { TOOL_CALL_PARSERS } from '../tools/registry.js';

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

function fraction(v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError(`expected a fraction in (0, 1], got ${v}`);
  return n;
}

// awq and gptq (SGLang's names for such checkpoints) only assert what the checkpoint is.
const QUANTIZATION = ['auto', 'none', 'int8', 'int4', 'awq', 'gptq'];
function quantization(v: string): string {
  if (!QUANTIZATION.includes(v)) throw new InvalidArgumentError(`expected one of ${QUANTIZATION.join(', ')}`);
  return v;
}

/** Flags of the commands that load a model. */
function addModelFlags(cmd: Command): Command {
  return cmd
    .option('--revision <rev>', 'branch, tag or commit of a Hub model id', 'main')
    .option('--quantization <mode>', 'weights of linear layers: none (float32), int8, int4, or auto: float32 if it fits in memory, else int8, else int4; AWQ and GPTQ checkpoints load as they are (awq/gptq check that the checkpoint is one)', quantization, 'auto')
    .option('--mem-fraction-static <f>', 'share of the available memory for weights and KV cache; sizes the KV cache', fraction)
    .option('--image-max-tokens <n>', `most tokens one image may take, the image resized or given fewer tiles to fit (0: the model's own limit; default ${DEFAULT_IMAGE_MAX_TOKENS} where the processor resizes freely (Qwen2-VL), else the model's own canvases)`, int)
    .option('--pan-and-scan', "Gemma 3: also show the model crops of long images (the processor's do_pan_and_scan)")
    .addOption(new Option('--dtype <dtype>', 'compute type: Iris computes in float32 on the CPU (bfloat16/float16 are accepted with a warning)').choices(['auto', 'float32', 'float', 'bfloat16', 'float16', 'half']).default('auto'));
}

const program = new Command();
program.name('iris').description('Iris: an OpenAI-compatible vision-language model engine');

const generate = program
  .command('generate')
  .description('Answer one prompt about zero or more images, then exit')
  .option('--model-path <path>', `a Hugging Face model folder or Hub model id (ORG/NAME); default: the built-in ${BUILTIN_MODEL_NAME}`)
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
    for (const w of ignoredFlagWarnings(opts)) process.stderr.write(w + '\n');
    await runGenerate({ ...opts, modelPath: opts.modelPath ?? builtinModelPath() });
  });

const chat = program
  .command('chat')
  .description('Chat in the terminal with a local model or a running server; lines from a pipe work too')
  .option('--model-path <path>', `a Hugging Face model folder or Hub model id (ORG/NAME); default: the built-in ${BUILTIN_MODEL_NAME}`)
  .option('--url <url>', 'chat with a running Iris (or OpenAI-compatible) server instead, e.g. http://127.0.0.1:30000')
  .option('--api-key <key>', 'the server key, with --url')
  .option('--image <file>', 'an image (path, URL or data URI) for the first message; repeat for several', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--system <text>', 'a system message')
  .option('--max-tokens <n>', 'largest number of tokens per answer', int, 512)
  .option('--temperature <t>', '0 for greedy; default from the model generation_config.json', float)
  .option('--seed <n>', 'seed for reproducible sampling', int)
  .option('--chat-template <file>', "a chat template file to use instead of the model's")
  .option('--threads <n>', 'compute threads (default: ONNX Runtime chooses)', int)
  .action(async (opts) => {
    for (const w of ignoredFlagWarnings(opts)) process.stderr.write(w + '\n');
    if (opts.url && opts.modelPath) throw new InvalidArgumentError('give --model-path or --url, not both');
    process.exitCode = await runChat({ ...opts, modelPath: opts.modelPath ?? builtinModelPath(), quiet: true });
  });

const serve = program
  .command('serve')
  .description('Serve the model over HTTP with OpenAI- and SGLang-compatible APIs')
  .option('--model-path <path>', `a Hugging Face model folder or Hub model id (ORG/NAME); default: the built-in ${BUILTIN_MODEL_NAME}, a tiny model that describes pictures of shapes`)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on (0 picks a free one)', int, 30000)
  .option('--chat-template <file>', "a chat template file (Jinja) to use instead of the model's")
  .option('--served-model-name <name>', 'the model name reported by /v1/models and in responses (default: the model path)')
  .option('--api-key <key>', 'require this key (Authorization: Bearer KEY) on every API route (not on /health, /health_generate, /metrics and the chat page, which asks for the key)')
  .option('--disable-playground', 'do not serve the chat page at /')
  .option('--context-length <n>', "longest prompt + completion in tokens (default: the model's max_position_embeddings)", int)
  .option('--max-running-requests <n>', 'requests decoding together at most', int, 64)
  .option('--max-queued-requests <n>', 'requests waiting beyond the running ones before answering 503', int, 256)
  .option('--max-total-tokens <n>', 'KV cache size in tokens (default: from free memory)', int)
  .option('--chunked-prefill-size <n>', 'most prompt tokens prefilled in one engine step (less while others are decoding)', int, 1024)
  .option('--disable-radix-cache', 'do not reuse the KV of repeated prompt prefixes and images')
  .option('--vision-cache-mb <mb>', 'size of the cache of image embeddings, by image content', float, 256)
  .option('--log-level <level>', 'debug, info, warning, error or critical (pino names also work)', pinoLevel, 'info')
  .option('--allowed-local-media-path <dir>', 'let requests read images from files under this folder (none by default)')
  .option('--media-fetch-timeout <seconds>', 'timeout of one image download attempt', float, 10)
  .option('--media-connect-timeout <seconds>', 'timeout to connect to an image host', float, 3)
  .option('--media-retries <n>', 'retries of an image download after a connection error, 429 or 5xx', int, 2)
  .option('--media-url-max-file-size-mb <mb>', 'largest image file accepted', float, 32)
  .option('--max-image-pixels <n>', 'largest image (width x height) accepted before decoding', int, 50_000_000)
  .option('--max-images-per-request <n>', 'most images in one request', int, 16)
  .option('--block-private-media-hosts', 'refuse image URLs that reach loopback, private or link-local addresses')
  .option('--low-detail-max-pixels <n>', 'pixel budget of images sent with detail "low"', int, 128 * 28 * 28)
  .option('--max-body-mb <mb>', 'largest request body', float, 64)
  .option('--shutdown-grace-period <seconds>', 'time in-flight requests get to finish on SIGTERM/SIGINT', float, 30)
  .option('--threads <n>', 'compute threads (default: ONNX Runtime chooses)', int)
  .addOption(new Option('--tool-call-parser <name>', "the format tool calls are written and read in (default: the model family's; qwen25 for families without one)").choices([...TOOL_CALL_PARSERS]))
  .action(async (opts) => {
    for (const w of ignoredFlagWarnings(opts)) process.stderr.write(w + '\n');
    const builtin = opts.modelPath === undefined;
    await runServe({ ...opts, modelPath: opts.modelPath ?? builtinModelPath(), servedModelName: opts.servedModelName ?? (builtin ? BUILTIN_MODEL_NAME : undefined) });
  });

addModelFlags(generate);
addModelFlags(serve);
addModelFlags(chat);
addSglangFlags(serve);

// The commands that load a model run with huge pages (see hugePages.ts).
const loadsModel = ['serve', 'generate'].includes(process.argv[2] ?? '');
if (!(loadsModel && relaunchWithHugePages())) {
  followParent();
  program.parseAsync(process.argv).catch((e: unknown) => {
    const msg = e instanceof IrisError ? e.message : e instanceof Error ? e.message : String(e);
    process.stderr.write(`iris: ${msg}\n`);
    process.exit(1);
  });
}
