import { existsSync, readFileSync } from 'node:fs';
import { ModelLoadError } from '../errors.js';

/** The text decoder's hyper-parameters (Qwen2 family naming; families map their config.json onto these). */
export interface TextConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** M-RoPE only: frequencies per axis (t, h, w), summing to headDim / 2; absent for 1-D RoPE. */
  mropeSection?: [number, number, number];
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
}

/** What every family's config gives the engine; a family's own config extends it. */
export interface ModelConfig {
  architecture: string;
  modelType: string;
  text: TextConfig;
  /** The token an image's placeholder expands into (one per embedding row). */
  imageTokenId: number;
  /** The tokens that stand for one image in a raw prompt that has no placeholders. */
  rawImageTokens: number[];
  eosTokenIds: number[];
  raw: Record<string, unknown>;
}

export type Json = Record<string, any>;

export function num(obj: Json, key: string, where: string, fallback?: number): number {
  const v = obj[key];
  if (typeof v === 'number') return v;
  if (fallback !== undefined) return fallback;
  throw new ModelLoadError(`config.json: ${where}${key} is missing or not a number`);
}

export function readJson(path: string, what: string): Json {
  if (!existsSync(path)) throw new ModelLoadError(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}
