import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ModelLoadError } from '../errors.js';
import { repackAwq } from './quant/awq.js';
import { repackGptq } from './quant/gptq.js';
import { NBits, NBitsWeight, blockSizeForGroup } from './quant/nbits.js';
import { QuantSource } from './quant/quantFile.js';
import { QuantScheme, parseQuantizationConfig } from './quant/scheme.js';
import { halfBits, int32s } from './quant/views.js';
import { TensorLocation, readSafetensorsHeader, readTensorBytes, toFloat32 } from './safetensors.js';

/** Checkpoint dtypes the graphs read as float weights. */
export const FLOAT_DTYPES = new Set<TensorLocation['dtype']>(['F32', 'F16', 'BF16']);

/**
 * The tensors of a checkpoint folder, by name: one model.safetensors or several
 * shards listed by model.safetensors.index.json. Only headers are read here.
 */
export class WeightStore {
  private constructor(
    readonly modelDir: string,
    private readonly tensors: Map<string, TensorLocation>,
    /** The weights files, symlinks resolved. */
    readonly files: string[],
    /** The deepest folder holding every weights file. */
    readonly dataRoot: string,
    /** How the checkpoint's pre-quantized linears (AWQ, GPTQ) are packed; null for a float checkpoint. */
    readonly scheme: QuantScheme | null,
  ) {}

  /** `quantizationConfig`: config.json's quantization_config, if any. */
  static open(modelDir: string, quantizationConfig?: unknown): WeightStore {
    const scheme = parseQuantizationConfig(quantizationConfig);
    const indexPath = join(modelDir, 'model.safetensors.index.json');
    const single = join(modelDir, 'model.safetensors');
    const tensors = new Map<string, TensorLocation>();
    let files: string[];
    if (existsSync(indexPath)) {
      let index: { weight_map?: Record<string, string> };
      try {
        index = JSON.parse(readFileSync(indexPath, 'utf8'));
      } catch (e) {
        throw new ModelLoadError(`${indexPath} is not valid JSON: ${(e as Error).message}`);
      }
      if (!index.weight_map) throw new ModelLoadError(`${indexPath} has no weight_map`);
      files = [...new Set(Object.values(index.weight_map))].map((f) => join(modelDir, f));
      // ONNX Runtime reads the shards relative to the folder and refuses paths that leave it.
      for (const f of files) {
        const rel = relative(resolve(modelDir), resolve(f));
        if (rel.startsWith('..') || isAbsolute(rel)) throw new ModelLoadError(`weights shard ${f} listed in ${indexPath} is outside the model folder`);
      }
      for (const f of files) if (!existsSync(f)) throw new ModelLoadError(`weights shard ${f} listed in ${indexPath} is missing`);
    } else if (existsSync(single)) {
      files = [single];
    } else {
      throw new ModelLoadError(`no weights in ${modelDir}: expected model.safetensors or model.safetensors.index.json`);
    }
    // ONNX Runtime resolves symlinks and refuses data outside the folder it is given; in a
    // Hugging Face cache the files are symlinks into ../../blobs, so locations are real paths.
    const real = files.map((f) => realpathSync(f));
    for (const f of real) for (const t of readSafetensorsHeader(f)) tensors.set(t.name, t);
    return new WeightStore(modelDir, tensors, real, commonFolder(real), scheme);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  /** The tensor's location, checked against the shape the architecture expects. */
  get(name: string, shape?: number[]): TensorLocation {
    const t = this.raw(name);
    if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))) {
      throw new ModelLoadError(`tensor ${name} has shape [${t.shape}] but the config implies [${shape}]`);
    }
    if (!FLOAT_DTYPES.has(t.dtype)) throw new ModelLoadError(`tensor ${name} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    return t;
  }

  /** The tensor's location, any dtype. */
  raw(name: string): TensorLocation {
    const t = this.tensors.get(name);
    if (!t) throw new ModelLoadError(`tensor ${name} is missing from the checkpoint in ${this.modelDir}`);
    return t;
  }

  /**
   * The pre-quantized linear `base` (a `base.qweight` in the checkpoint) as a source for
   * repacking into MatMulNBits, or null when the linear is stored as float.
   */
  packedLinear(base: string, n: number, k: number): { source: QuantSource; bits: NBits; blockSize: number; zeroPoints: boolean } | null {
    if (!this.has(`${base}.qweight`)) return null;
    const s = this.scheme;
    if (!s) throw new ModelLoadError(`${base}.qweight is in the checkpoint but config.json has no quantization_config`);
    const read = (suffix: string) => readTensorBytes(this.raw(`${base}.${suffix}`));
    const blockSize = blockSizeForGroup(s.groupSize === -1 ? k : s.groupSize);
    const repack = (): NBitsWeight => {
      const scalesLoc = this.raw(`${base}.scales`);
      const scales = scalesLoc.dtype === 'F16' ? halfBits(read('scales')) : toFloat32(read('scales'), scalesLoc.dtype);
      const t = { qweight: int32s(read('qweight')), qzeros: int32s(read('qzeros')), scales };
      if (s.method === 'awq') return repackAwq(t, { k, n, groupSize: s.groupSize, blockSize });
      const gIdx = this.has(`${base}.g_idx`) ? int32s(read('g_idx')) : undefined;
      return repackGptq({ ...t, gIdx }, { k, n, bits: s.bits, groupSize: s.groupSize, checkpointFormat: s.checkpointFormat, blockSize });
    };
    // Symmetric GPTQ has only the implied zero point; AWQ and asymmetric GPTQ store theirs.
    const zeroPoints = s.method === 'awq' || !s.sym;
    return { source: { kind: 'packed', id: `${s.method}:${base}`, n, repack }, bits: s.bits, blockSize, zeroPoints };
  }

  /** Reads a (small) tensor into memory as float32. */
  readFloat32(name: string, shape?: number[]): Float32Array {
    const t = this.get(name, shape);
    return toFloat32(readTensorBytes(t), t.dtype);
  }
}

/** The deepest folder containing all the given absolute file paths. */
export function commonFolder(files: string[]): string {
  let common = dirname(files[0]!).split(sep);
  for (const f of files.slice(1)) {
    const parts = dirname(f).split(sep);
    let i = 0;
    while (i < common.length && i < parts.length && common[i] === parts[i]) i++;
    common = common.slice(0, i);
  }
  return common.join(sep) || sep;
}

