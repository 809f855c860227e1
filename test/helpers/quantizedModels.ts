/**
 * Checkpoints for testing quantized weights against float32 references: a copy of a model
 * whose quantized tensors hold exactly the values Iris's quantization stands for, and
 * AWQ / GPTQ versions of a model with known integer codes beside float copies of what
 * those codes mean.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QuantMode } from '../../src/engine/memoryPlan.js';
import { loadModelConfig, modelGraphs } from '../../src/models/registry.js';
import { dequantize } from '../../src/runtime/quant/nbits.js';
import { quantizeRaw } from '../../src/runtime/quant/rawRows.js';
import { readTensorBytes } from '../../src/runtime/safetensors.js';
import { WeightStore } from '../../src/runtime/weightStore.js';
import { RawTensor, packAwq, packGptq, randomHalfScales, randomInts, referenceWeights, rng, writeSafetensors } from './quantCheckpoints.js';

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const bytesOf = (a: Int32Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Every tensor of a checkpoint (single file or shards), as stored. */
export function readAllTensors(dir: string): RawTensor[] {
  const store = WeightStore.open(dir);
  return store.names().map((name) => {
    const t = store.raw(name);
    return { name, dtype: t.dtype as RawTensor['dtype'], shape: t.shape, data: new Uint8Array(readTensorBytes(t)) };
  });
}

/** A new model folder: the source's other files, the given tensors, config.json patched. */
export function writeModelCopy(srcDir: string, tensors: RawTensor[], patchConfig?: (c: Record<string, unknown>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'iris-qmodel-'));
  for (const f of readdirSync(srcDir)) if (!f.endsWith('.safetensors') && f !== 'model.safetensors.index.json') copyFileSync(join(srcDir, f), join(dir, f));
  if (patchConfig) {
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    patchConfig(c);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

/**
 * A float32 copy of the model in which every tensor Iris quantizes in `mode` holds its
 * dequantized values (quantized here with the same blockwise rules, but no ONNX Runtime).
 * Returns the folder and the names of the tensors replaced.
 */
export function dequantizedCopy(srcDir: string, mode: QuantMode): { dir: string; replaced: Map<string, number> } {
  const config = loadModelConfig(srcDir);
  const { vision, text } = modelGraphs(WeightStore.open(srcDir), config, { quantization: mode });
  const bitsOf = new Map<string, { bits: 4 | 8; blockSize: number }>();
  for (const w of [vision.w, text.w]) for (const e of w.quantFile?.entries ?? []) for (const n of e.floatParts) bitsOf.set(n, e);
  const replaced = new Map<string, number>();
  const tensors = readAllTensors(srcDir).map((t) => {
    const q = bitsOf.get(t.name);
    if (!q) return t;
    const [n, k] = t.shape as [number, number];
    replaced.set(t.name, q.bits);
    return { name: t.name, dtype: 'F32' as const, shape: t.shape, data: f32(dequantize(quantizeRaw(t.data, t.dtype as 'F32', n, k, q.bits, q.blockSize))) };
  });
  return { dir: writeModelCopy(srcDir, tensors), replaced };
}

export type PackedFormat = 'awq' | 'gptq4' | 'gptq4-asym-gptqmodel' | 'gptq8';

/**
 * The model with its language model's linears (q/k/v/o, gate/up/down) replaced by packed
 * integer codes in `format` (group 32), and a float32 copy holding the weights those codes
 * stand for. Biases and every other tensor stay as they are.
 */
export function packedCopies(srcDir: string, format: PackedFormat, seed = 7): { packed: string; reference: string; layers: number } {
  const r = rng(seed);
  const group = 32;
  const bits = format === 'gptq8' ? 8 : 4;
  const packed: RawTensor[] = [];
  const reference: RawTensor[] = [];
  let layers = 0;
  for (const t of readAllTensors(srcDir)) {
    const m = /^(.*layers\.\d+\.(?:self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj))\.weight$/.exec(t.name);
    if (!m || t.name.startsWith('visual') || t.name.includes('.visual.')) {
      packed.push(t);
      reference.push(t);
      continue;
    }
    layers++;
    const base = m[1]!;
    const [n, k] = t.shape as [number, number];
    const groups = k / group;
    const codes = randomInts(k * n, 1 << bits, r);
    const zeros = format === 'gptq4' || format === 'gptq8' ? new Uint8Array(groups * n).fill(1 << (bits - 1)) : randomInts(groups * n, 1 << bits, r);
    // Small scales keep activations in the range of the original random weights.
    const scales = randomHalfScales(groups * n, r).map((h) => h - (5 << 10));
    reference.push({ name: t.name, dtype: 'F32', shape: [n, k], data: f32(referenceWeights(codes, zeros, scales, k, n, group)) });
    const q = format === 'awq' ? packAwq(codes, zeros, k, n, group) : packGptq(codes, zeros, k, n, bits, format === 'gptq4-asym-gptqmodel' ? 'gptqmodel' : 'autogptq');
    const words = 32 / bits;
    if (format === 'awq') {
      packed.push({ name: `${base}.qweight`, dtype: 'I32', shape: [k, n / 8], data: bytesOf(q.qweight) });
      packed.push({ name: `${base}.qzeros`, dtype: 'I32', shape: [groups, n / 8], data: bytesOf(q.qzeros) });
    } else {
      packed.push({ name: `${base}.qweight`, dtype: 'I32', shape: [k / words, n], data: bytesOf(q.qweight) });
      packed.push({ name: `${base}.qzeros`, dtype: 'I32', shape: [groups, n / words], data: bytesOf(q.qzeros) });
      packed.push({ name: `${base}.g_idx`, dtype: 'I32', shape: [k], data: bytesOf(Int32Array.from({ length: k }, (_, i) => Math.floor(i / group))) });
    }
    packed.push({ name: `${base}.scales`, dtype: 'F16', shape: [groups, n], data: bytesOf(scales) });
  }
  const quantizationConfig =
    format === 'awq'
      ? { quant_method: 'awq', bits: 4, group_size: group, version: 'gemm', zero_point: true, modules_to_not_convert: ['visual'] }
      : { quant_method: 'gptq', bits, group_size: group, desc_act: false, sym: format !== 'gptq4-asym-gptqmodel', checkpoint_format: 'gptq' };
  return {
    packed: writeModelCopy(srcDir, packed, (c) => (c.quantization_config = quantizationConfig)),
    reference: writeModelCopy(srcDir, reference),
    layers,
  };
}
