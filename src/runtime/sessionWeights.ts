import { relative, resolve, sep } from 'node:path';
import { ModelLoadError } from '../errors.js';
import { DataType, ExternalRef } from './onnx/model.js';
import { GraphBuilder } from './onnx/graph.js';
import { NBits, nbitsLayout } from './quant/nbits.js';
import { QuantFile, QuantRegions, QuantSource } from './quant/quantFile.js';
import { DTYPE_BYTES, TensorLocation } from './safetensors.js';
import { WeightStore, commonFolder } from './weightStore.js';

const ONNX_DTYPE: Partial<Record<TensorLocation['dtype'], DataType>> = {
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  BF16: DataType.BFLOAT16,
};

/**
 * How a session holds its weights when quantized: linear layers as ONNX Runtime's
 * blockwise MatMulNBits, the embedding table as int8 rows dequantized when gathered.
 */
export interface QuantPolicy {
  /** Bits of the linear layers' weights. */
  linearBits: NBits;
  /** Bits of the output projection (lm_head), kept at 8 for int4 layers: its errors reach every logit. */
  headBits: NBits;
  /** Bits of the embedding table, or null to keep it float32. */
  embedBits: 8 | null;
  /** Block size per bit width. */
  blockSizes: Record<NBits, number>;
}

/**
 * A session's quantized weights: the policy for its float weights (null: keep them float32,
 * while a pre-quantized checkpoint's linears are still repacked), the MatMulNBits accuracy
 * level (4: int8 activations, fast; 0: float32, exact) and the file they are written to.
 * null: a float32 session.
 */
export type SessionQuant = { policy: QuantPolicy | null; accuracyLevel: 0 | 4; file: QuantFile } | null;

/**
 * The checkpoint tensors one ONNX session uses, as initializers whose external
 * data points straight into the checkpoint's safetensors files. ONNX Runtime
 * maps each tensor from disk while it builds the session (see `dataFolder`), so
 * the process never holds a JS copy of the weights; BF16/F16 weights are cast to
 * float32 in the graph and ORT folds the cast tensor by tensor, which keeps the
 * load's peak memory near the size of the float32 weights. With a QuantPolicy,
 * linear layers read their weights from a QuantFile instead.
 */
export class SessionWeights {
  private byName = new Map<string, string>();
  /** File regions of each quantized weight, by its key. */
  private regions = new Map<string, QuantRegions>();
  private initialized = new Set<string>();
  private total = 0;
  private resident = 0;
  readonly dataFolder: string;

  constructor(
    private readonly store: WeightStore,
    private readonly g: GraphBuilder,
    private readonly quant: SessionQuant = null,
  ) {
    // ONNX Runtime resolves every external location against one folder.
    this.dataFolder = quant ? commonFolder([...store.files, quant.file.path]) : store.dataRoot;
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

  /**
   * How the policy quantizes mixture-of-experts weights whose rows have these lengths: its bits,
   * and its block size halved until it divides them all (one block size serves the whole op);
   * null to keep them float32.
   */
  expertQuant(rowLengths: number[]): { bits: NBits; blockSize: number } | null {
    const policy = this.quant?.policy;
    if (!policy) return null;
    const bits = policy.linearBits;
    let blockSize = policy.blockSizes[bits];
    while (blockSize > 16 && rowLengths.some((k) => k % blockSize !== 0)) blockSize /= 2;
    return rowLengths.every((k) => k % blockSize === 0) ? { bits, blockSize } : null;
  }

  /**
   * Mixture-of-experts weights [E, N, K] as ONNX Runtime's MoE ops read them, made of checkpoint
   * tensors' rows: the experts' groups one after the other, the tensors of a group interleaved
   * row by row (as the fused SwiGLU kernel reads gate and up rows). Float32, or blockwise
   * quantized with `quant` (bytes [E, N, K * bits / 8] and scales [E, N, K / block]). With a
   * weights file they are written there once and read as they are; otherwise built in the
   * graph, where ORT's load-time folding holds several copies of them.
   */
  experts(key: string, groups: Array<Array<[name: string, shape: [number, number]]>>, shape: [number, number, number], quant: { bits: NBits; blockSize: number } | null): { weights: string; scales?: string } {
    const file = this.quant?.file;
    const [E, N, K] = shape;
    if (quant) {
      const parts: QuantSource[] = groups.flatMap((grp) => grp.map(([name, shape], index) => ({ kind: 'float' as const, loc: this.store.get(name, shape), lane: { index, of: grp.length } })));
      for (const p of parts) if (p.kind === 'float') this.total += p.loc.length;
      const added = this.quant!.file.add(`q${quant.bits}:${key}`, parts, K, quant.bits, quant.blockSize, false);
      const weights = this.g.external(`${key}:B`, DataType.UINT8, [E, N, (K * quant.bits) / 8], this.relative(added.b));
      const scales = this.g.external(`${key}:scales`, DataType.FLOAT, [E, N, K / quant.blockSize], this.relative(added.scales));
      // For 4 bits MLAS's int4 GEMM packs its own copy at load, and ORT keeps the weights as
      // loaded beside it (measured: RSS twice the file's bytes).
      this.resident += (added.b.length + added.scales.length) * (quant.bits === 4 ? 2 : 1);
      return { weights, scales };
    }
    if (file) {
      const locs = groups.map((grp) => grp.map(([name, shape]) => this.store.get(name, shape)));
      for (const grp of locs) for (const t of grp) this.total += t.length;
      const ref = file.addRows(key, locs, K);
      this.resident += ref.length;
      return { weights: this.g.external(`rows:${key}`, DataType.FLOAT, shape, this.relative(ref)) };
    }
    const g = this.g;
    const group = (grp: Array<[string, [number, number]]>) =>
      grp.length === 1 ? this.weight(grp[0]![0], grp[0]![1]) : g.reshape(g.concat(grp.map(([n, [r, k]]) => g.reshape(this.weight(n, [r, k]), [r, 1, k])), 1), [-1, K]);
    return { weights: g.reshape(g.concat(groups.map(group), 0), shape) };
  }

  /**
   * y = x W^T for checkpoint Linears stored [out, in] (`names` end in `.weight`), several
   * stacked along `out` as one matmul. Quantized as the policy says (`head`: the output
   * projection), or float32.
   */
  matmul(x: string, names: string[], outDims: number[], inDim: number, role: 'linear' | 'head' = 'linear'): string {
    const g = this.g;
    const policy = this.quant?.policy;
    const packed = names.map((n, i) => this.store.packedLinear(n.replace(/\.weight$/, ''), outDims[i]!, inDim));
    if (packed.some(Boolean) && !packed.every(Boolean)) throw new ModelLoadError(`${names.join(', ')}: some are pre-quantized and some are not`);
    if (!packed[0] && !policy) {
      const w = names.length === 1 ? this.weight(names[0]!, [outDims[0]!, inDim]) : this.concatenated(names.map((n, i) => [n, [outDims[i]!, inDim]]));
      return g.linearNoBias(x, w);
    }
    const q = packed[0]
      ? this.quantized(names, packed.map((p) => p!.source), inDim, packed[0].bits, packed[0].blockSize, packed[0].zeroPoints)
      : this.floatQuantized(names, outDims, inDim, role === 'head' ? policy!.headBits : policy!.linearBits);
    const inputs = [x, ...this.nbitsInputs(q)];
    const N = outDims.reduce((a, b) => a + b, 0);
    return g.op('MatMulNBits', inputs, { K: inDim, N, bits: q.bits, block_size: q.blockSize, accuracy_level: this.quant!.accuracyLevel }, { domain: 'com.microsoft' });
  }

  /** Float checkpoint tensors quantized by the policy's block size for `bits`. */
  private floatQuantized(names: string[], outDims: number[], inDim: number, bits: NBits) {
    const sources: QuantSource[] = names.map((n, i) => ({ kind: 'float', loc: this.store.get(n, [outDims[i]!, inDim]) }));
    return this.quantized(names, sources, inDim, bits, this.quant!.policy!.blockSizes[bits], false);
  }

  /** Rows of an embedding table [rows, dim] for the ids (any shape): float32 [...ids, dim]. */
  embedding(name: string, shape: [number, number], ids: string): string {
    const g = this.g;
    const policy = this.quant?.policy;
    if (!policy?.embedBits) return g.gather(this.weight(name, shape), ids, 0);
    const [rows, dim] = shape;
    const q = this.floatQuantized([name], [rows], dim, policy.embedBits);
    // GatherBlockQuantized reads the table's file bytes (the same ones an int8 output
    // projection of a tied embedding uses) through its own 2-D initializers: ONNX Runtime
    // maps them from the file and touches only the rows gathered, so the table is neither
    // prepacked nor held in memory a second time.
    const L = nbitsLayout(q.bits, q.blockSize, dim);
    const data = `${q.key}:rows`;
    const scales = `${q.key}:row_scales`;
    if (!this.initialized.has(data)) {
      this.initialized.add(data);
      this.g.external(data, DataType.UINT8, [rows, L.rowBytes], q.regions.b);
      this.g.external(scales, DataType.FLOAT, [rows, L.kBlocks], q.regions.scales);
    }
    const gathered = g.op('GatherBlockQuantized', [data, ids, scales], { bits: q.bits, block_size: q.blockSize, gather_axis: 0, quantize_axis: 1 }, { domain: 'com.microsoft' });
    return L.kBlocks * q.blockSize === dim ? gathered : g.slice(gathered, [0], [dim], [-1]);
  }

  /** The initializers of a MatMulNBits weight, its parts stacked along N (added once per session and name list). */
  private quantized(names: string[], parts: QuantSource[], inDim: number, bits: NBits, blockSize: number, zeroPoints: boolean) {
    const key = `q${bits}:${names.join('+')}`;
    let regions = this.regions.get(key);
    if (!regions) {
      for (const p of parts) if (p.kind === 'float') this.total += p.loc.length;
      const added = this.quant!.file.add(key, parts, inDim, bits, blockSize, zeroPoints);
      regions = { b: this.relative(added.b), scales: this.relative(added.scales), zeroPoints: added.zeroPoints && this.relative(added.zeroPoints) };
      this.regions.set(key, regions);
    }
    return { key, bits, blockSize, inDim, regions };
  }

  /** MatMulNBits' initializers of a quantized weight (added on first use). */
  private nbitsInputs(q: ReturnType<SessionWeights['quantized']>): string[] {
    const { key, regions } = q;
    const init = [`${key}:B`, `${key}:scales`, ...(regions.zeroPoints ? [`${key}:zero_points`] : [])];
    if (!this.initialized.has(init[0]!)) {
      this.initialized.add(init[0]!);
      const L = nbitsLayout(q.bits, q.blockSize, q.inDim);
      const N = regions.scales.length / 4 / L.kBlocks;
      this.g.external(init[0]!, DataType.UINT8, [N, L.kBlocks, L.blobBytes], regions.b);
      this.g.external(init[1]!, DataType.FLOAT, [N * L.kBlocks], regions.scales);
      if (regions.zeroPoints) this.g.external(init[2]!, DataType.UINT8, [N * L.zpRowBytes], regions.zeroPoints);
      // The kernel prepacks B into its own memory; with int8 activations it keeps a float
      // sum per block beside each scale (measured).
      const blockSums = this.quant!.accuracyLevel === 4 ? regions.scales.length : 0;
      this.resident += regions.b.length + regions.scales.length + blockSums + (regions.zeroPoints?.length ?? 0);
    }
    return init;
  }

  private relative(ref: ExternalRef): ExternalRef {
    return { ...ref, location: relative(this.dataFolder, resolve(ref.location)).split(sep).join('/') };
  }

  /** The initializer of a checkpoint tensor as stored (added once per session). */
  private initializer(name: string, shape?: number[]): { init: string; dtype: DataType } {
    const initName = `w:${name}`;
    const loc = this.store.get(name, shape);
    const dtype = ONNX_DTYPE[loc.dtype]!;
    if (!this.initialized.has(initName)) {
      this.initialized.add(initName);
      this.total += loc.length;
      this.resident += (loc.length / DTYPE_BYTES[loc.dtype]) * 4;
      this.g.external(initName, dtype, loc.shape, this.relative({ location: loc.file, offset: loc.offset, length: loc.length }));
    }
    return { init: initName, dtype };
  }

  /** The session's quantized weights file, if any. */
  get quantFile(): QuantFile | null {
    return this.quant?.file ?? null;
  }

  /** Writes the quantized weights file if the session has one and it is not cached yet, on up to `threads` threads. */
  async prepare(onProgress?: (fraction: number) => void, threads = 1): Promise<void> {
    await this.quant?.file.materialize(onProgress, threads);
  }

  /** Total bytes of checkpoint data this session uses. */
  get bytes(): number {
    return this.total;
  }

  /** Bytes of weights the session holds once loaded (float32 or quantized). */
  get residentBytes(): number {
    return this.resident;
  }
}

