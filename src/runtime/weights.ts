import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from '../errors.js';
import { DataType } from './onnx/model.js';
import { GraphBuilder } from './onnx/graph.js';
import { DTYPE_BYTES, TensorLocation, readSafetensorsHeader, readTensorBytes, toFloat32 } from './safetensors.js';

const ONNX_DTYPE: Partial<Record<TensorLocation['dtype'], DataType>> = {
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
};

/**
 * The tensors of a checkpoint folder, by name: one model.safetensors or several
 * shards listed by model.safetensors.index.json. Only headers are read here.
 */
export class WeightStore {
  private constructor(
    readonly modelDir: string,
    private readonly tensors: Map<string, TensorLocation>,
  ) {}

  static open(modelDir: string): WeightStore {
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
      for (const f of files) if (!existsSync(f)) throw new ModelLoadError(`weights shard ${f} listed in ${indexPath} is missing`);
    } else if (existsSync(single)) {
      files = [single];
    } else {
      throw new ModelLoadError(`no weights in ${modelDir}: expected model.safetensors or model.safetensors.index.json`);
    }
    for (const f of files) for (const t of readSafetensorsHeader(f)) tensors.set(t.name, t);
    return new WeightStore(modelDir, tensors);
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  /** The tensor's location, checked against the shape the architecture expects. */
  get(name: string, shape?: number[]): TensorLocation {
    const t = this.tensors.get(name);
    if (!t) throw new ModelLoadError(`tensor ${name} is missing from the checkpoint in ${this.modelDir}`);
    if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))) {
      throw new ModelLoadError(`tensor ${name} has shape [${t.shape}] but the config implies [${shape}]`);
    }
    if (!ONNX_DTYPE[t.dtype]) throw new ModelLoadError(`tensor ${name} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    return t;
  }

  /** Reads a (small) tensor into memory as float32. */
  readFloat32(name: string, shape?: number[]): Float32Array {
    const t = this.get(name, shape);
    return toFloat32(readTensorBytes(t), t.dtype);
  }
}

/**
 * Collects the checkpoint tensors one ONNX session uses and packs their bytes
 * into in-memory "external data" files for ONNX Runtime, which copies them at
 * session creation; the packed buffers are dropped right after, so the process
 * keeps one copy of the weights (ORT's). Checkpoint-dtype weights are cast to
 * float32 inside the graph; ORT folds the cast at load.
 */
export class SessionWeights {
  private entries: Array<{ loc: TensorLocation; file: number; offset: number }> = [];
  private byName = new Map<string, string>();
  private fileSizes: number[] = [0];
  private static readonly FILE_LIMIT = 1 << 30;

  constructor(
    private readonly store: WeightStore,
    private readonly g: GraphBuilder,
  ) {}

  /** A float32 graph value holding the named checkpoint tensor. */
  weight(name: string, shape?: number[]): string {
    const cached = this.byName.get(name);
    if (cached) return cached;
    const loc = this.store.get(name, shape);
    let file = this.fileSizes.length - 1;
    if (this.fileSizes[file]! > 0 && this.fileSizes[file]! + loc.length > SessionWeights.FILE_LIMIT) {
      this.fileSizes.push(0);
      file++;
    }
    const offset = this.fileSizes[file]!;
    this.fileSizes[file] = offset + loc.length;
    this.entries.push({ loc, file, offset });
    const dtype = ONNX_DTYPE[loc.dtype]!;
    const init = this.g.external(`w:${name}`, dtype, loc.shape, { location: `weights${file}.bin`, offset, length: loc.length });
    const value = dtype === DataType.FLOAT ? init : this.g.cast(init, DataType.FLOAT);
    this.byName.set(name, value);
    return value;
  }

  /** Total bytes of checkpoint data this session uses. */
  get bytes(): number {
    return this.fileSizes.reduce((a, b) => a + b, 0);
  }

  /** Reads the used tensors from disk into the external-data buffers. */
  pack(): Array<{ path: string; data: Uint8Array }> {
    const bufs = this.fileSizes.map((n) => Buffer.allocUnsafe(n));
    const fds = new Map<string, number>();
    try {
      for (const e of this.entries) {
        let fd = fds.get(e.loc.file);
        if (fd === undefined) {
          fd = openSync(e.loc.file, 'r');
          fds.set(e.loc.file, fd);
        }
        let done = 0;
        while (done < e.loc.length) {
          const n = readSync(fd, bufs[e.file]!, e.offset + done, e.loc.length - done, e.loc.offset + done);
          if (n <= 0) throw new ModelLoadError(`short read of tensor ${e.loc.name} from ${e.loc.file}`);
          done += n;
        }
      }
    } finally {
      for (const fd of fds.values()) closeSync(fd);
    }
    return bufs.map((data, i) => ({ path: `weights${i}.bin`, data }));
  }
}

export { DTYPE_BYTES };
