import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
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
    /** The deepest folder holding every weights file, symlinks resolved. */
    readonly dataRoot: string,
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
    return new WeightStore(modelDir, tensors, commonFolder(real));
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
 * The checkpoint tensors one ONNX session uses, as initializers whose external
 * data points straight into the checkpoint's safetensors files. ONNX Runtime
 * maps each tensor from disk while it builds the session (see `dataFolder`), so
 * the process never holds a JS copy of the weights; BF16/F16 weights are cast to
 * float32 in the graph and ORT folds the cast tensor by tensor, which keeps the
 * load's peak memory near the size of the float32 weights.
 */
export class SessionWeights {
  private byName = new Map<string, string>();
  private initialized = new Set<string>();
  private total = 0;

  constructor(
    private readonly store: WeightStore,
    private readonly g: GraphBuilder,
  ) {}

  /** The folder ORT resolves the external-data locations against. */
  get dataFolder(): string {
    return this.store.dataRoot;
  }

  /** A float32 graph value holding the named checkpoint tensor. */
  weight(name: string, shape?: number[]): string {
    const cached = this.byName.get(name);
    if (cached) return cached;
    const { init, dtype } = this.initializer(name, shape);
    const value = dtype === DataType.FLOAT ? init : this.g.cast(init, DataType.FLOAT);
    this.byName.set(name, value);
    return value;
  }

  /**
   * Float32 graph value of several checkpoint tensors concatenated on axis 0. Tensors
   * of one 16-bit dtype are concatenated before the cast, so that ORT's load-time
   * folding holds half as many bytes in flight.
   */
  concatenated(parts: Array<[name: string, shape: number[]]>): string {
    const raw = parts.map(([name, shape]) => this.initializer(name, shape));
    const dtype = raw[0]!.dtype;
    if (dtype === DataType.FLOAT || raw.some((r) => r.dtype !== dtype)) {
      return this.g.concat(parts.map(([name, shape]) => this.weight(name, shape)), 0);
    }
    return this.g.cast(this.g.concat(raw.map((r) => r.init), 0), DataType.FLOAT);
  }

  /** The initializer of a checkpoint tensor as stored (added once per session). */
  private initializer(name: string, shape?: number[]): { init: string; dtype: DataType } {
    const initName = `w:${name}`;
    const loc = this.store.get(name, shape);
    const dtype = ONNX_DTYPE[loc.dtype]!;
    if (!this.initialized.has(initName)) {
      this.initialized.add(initName);
      this.total += loc.length;
      const location = relative(this.dataFolder, resolve(loc.file)).split(sep).join('/');
      this.g.external(initName, dtype, loc.shape, { location, offset: loc.offset, length: loc.length });
    }
    return { init: initName, dtype };
  }

  /** Total bytes of checkpoint data this session uses. */
  get bytes(): number {
    return this.total;
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

export { DTYPE_BYTES };
