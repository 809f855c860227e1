import { isAbsolute, normalize } from 'node:path';
import { ModelLoadError } from '../errors.js';

/**
 * Which files of a repo Iris reads. Repos often carry several copies of the weights
 * (pytorch_model.bin, ONNX, GGUF, ...) and docs; fetching only these keeps a download
 * to the size of one checkpoint.
 */

export const CONFIG = 'config.json';
export const WEIGHTS_INDEX = 'model.safetensors.index.json';
export const WEIGHTS_SINGLE = 'model.safetensors';

/** Read by Iris when present (config.json is required; the rest are optional). */
export const SIDE_FILES = [
  CONFIG,
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'chat_template.json',
  'chat_template.jinja',
  'preprocessor_config.json',
  'processor_config.json',
];

/** Named extra chat templates, read by src/tokenizer/chatTemplate.ts next to chat_template.jinja. */
export const EXTRA_TEMPLATES_DIR = 'additional_chat_templates';
const isExtraTemplate = (p: string) => p.startsWith(`${EXTRA_TEMPLATES_DIR}/`) && p.endsWith('.jinja') && !p.slice(EXTRA_TEMPLATES_DIR.length + 1).includes('/');

const WEIGHT_EXT = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|ggml|onnx|pdparams|npz)$/;

/** The side files present in the repo, in a fixed order. */
export function sideFiles(paths: ReadonlySet<string>): string[] {
  return [...SIDE_FILES.filter((f) => paths.has(f)), ...[...paths].filter(isExtraTemplate).sort()];
}

/**
 * Which weights layout the repo has, in the order src/runtime/weights.ts reads them (the index
 * wins over a single file). A repo without either is refused here, before any download.
 */
export function weightsLayout(paths: ReadonlySet<string>, repo: string): typeof WEIGHTS_INDEX | typeof WEIGHTS_SINGLE {
  if (!paths.has(CONFIG)) throw new ModelLoadError(`${repo} has no config.json: not a transformers model repo`);
  if (paths.has(WEIGHTS_INDEX)) return WEIGHTS_INDEX;
  if (paths.has(WEIGHTS_SINGLE)) return WEIGHTS_SINGLE;
  const weights = [...paths].filter((p) => WEIGHT_EXT.test(p)).sort();
  const has = weights.length ? `it has ${weights.slice(0, 6).join(', ')}${weights.length > 6 ? `, ... (${weights.length} weight files)` : ''}` : 'it has no weight files at all';
  throw new ModelLoadError(
    `${repo} has no model.safetensors or model.safetensors.index.json (${has}); Iris reads *.safetensors weights only`,
  );
}

/** The shard files an index's weight_map lists, each once, refusing paths that leave the repo. */
export function shardsOf(indexText: string, where: string): string[] {
  let index: { weight_map?: Record<string, unknown> };
  try {
    index = JSON.parse(indexText);
  } catch (e) {
    throw new ModelLoadError(`${where} is not valid JSON: ${(e as Error).message}`);
  }
  if (!index || typeof index.weight_map !== 'object' || index.weight_map === null) throw new ModelLoadError(`${where} has no weight_map`);
  const shards = [...new Set(Object.values(index.weight_map))];
  for (const s of shards) {
    if (typeof s !== 'string' || isAbsolute(s) || normalize(s).startsWith('..')) {
      throw new ModelLoadError(`${where} lists a shard outside the repo: ${String(s)}`);
    }
  }
  return (shards as string[]).sort();
}
