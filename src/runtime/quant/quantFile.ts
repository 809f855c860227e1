import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ModelLoadError } from '../../errors.js';
import { ExternalRef } from '../onnx/model.js';
import { TensorLocation, readTensorBytes, toFloat32 } from '../safetensors.js';
import { NBits, NBitsWeight, allocNBits, nbitsLayout, packZeroPoints } from './nbits.js';
import { floatMatrix, quantizeRowsInto, readRowChunks } from './rawRows.js';

/** Bumped whenever the bytes written for the same job change. */
const FORMAT_VERSION = 1;
const ALIGN = 64;
const CHUNK_BYTES = 8 << 20;

/** Where quantized weights are kept between runs: $IRIS_CACHE_DIR, else $XDG_CACHE_HOME/iris, else ~/.cache/iris. */
export function irisCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IRIS_CACHE_DIR) return env.IRIS_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'iris');
}

/**
 * One part of a quantized weight: a float checkpoint tensor to quantize, or an already quantized
 * one to repack. Float parts with a `lane` are interleaved row by row with the parts beside them
 * (lanes 0..of-1 in order, of equal rows), as a fused kernel reads gate and up rows.
 */
export type QuantSource =
  | { kind: 'float'; loc: TensorLocation; lane?: { index: number; of: number } }
  | { kind: 'packed'; id: string; n: number; repack: () => NBitsWeight };

/** The file regions of one MatMulNBits weight. */
export interface QuantRegions {
  b: ExternalRef;
  scales: ExternalRef;
  zeroPoints?: ExternalRef;
}

interface Job {
  name: string;
  bits: NBits;
  blockSize: number;
  n: number;
  k: number;
  zeroPoints: boolean;
  parts: QuantSource[];
  offsets: { b: number; scales: number; zeroPoints: number };
}

/**
 * A float32 weight [n, k] rearranged for a kernel: its groups one after the other, each
 * group's tensors (of equal rows) interleaved row by row.
 */
interface RowsJob {
  name: string;
  groups: TensorLocation[][];
  n: number;
  k: number;
  offset: number;
}

function sourceId(s: QuantSource): string {
  if (s.kind === 'packed') return s.id;
  return `${s.loc.name}:${s.loc.dtype}:${s.loc.shape.join('x')}${s.lane ? `:${s.lane.index}/${s.lane.of}` : ''}`;
}

/**
 * The weights one session derives from its checkpoint (quantized weights, and float weights
 * rearranged for a kernel), written once to a file in the cache folder and read by ONNX
 * Runtime as external data (so neither the checkpoint's weights nor a JS copy of the derived
 * ones stay in memory, and the load's peak stays near what is resident).
 * Weights are quantized while streaming their rows from the safetensors files, a chunk
 * at a time. The file is reused while the checkpoint files, the settings and the job
 * list are the same; it is written under a temporary name and renamed when complete.
 */
export class QuantFile {
  private readonly jobs: Job[] = [];
  private readonly rowJobs: RowsJob[] = [];
  private size = 0;
  readonly path: string;
  private readonly manifestPath: string;

  /**
   * `identity`: what the file's contents depend on besides its jobs: the checkpoint's files
   * as [path, size, mtimeMs] (a file whose checkpoint changed or went away is pruned) and
   * the settings.
   */
  constructor(
    dir: string,
    private readonly identity: { files: CheckpointFile[]; [setting: string]: unknown },
  ) {
    const key = createHash('sha256').update(JSON.stringify({ v: FORMAT_VERSION, identity })).digest('hex').slice(0, 32);
    this.path = join(dir, `${key}.bin`);
    this.manifestPath = join(dir, `${key}.json`);
  }

  private reserve(len: number): number {
    const off = Math.ceil(this.size / ALIGN) * ALIGN;
    this.size = off + len;
    return off;
  }

  /** Reserves the regions of one weight [sum of parts' n, k] stacked along n. */
  add(name: string, parts: QuantSource[], k: number, bits: NBits, blockSize: number, zeroPoints: boolean): QuantRegions {
    const L = nbitsLayout(bits, blockSize, k);
    const n = parts.reduce((a, p) => a + (p.kind === 'float' ? p.loc.shape[0]! : p.n), 0);
    const offsets = { b: this.reserve(n * L.rowBytes), scales: this.reserve(n * L.kBlocks * 4), zeroPoints: zeroPoints ? this.reserve(n * L.zpRowBytes) : -1 };
    this.jobs.push({ name, bits, blockSize, n, k, zeroPoints, parts, offsets });
    const location = this.path;
    return {
      b: { location, offset: offsets.b, length: n * L.rowBytes },
      scales: { location, offset: offsets.scales, length: n * L.kBlocks * 4 },
      zeroPoints: zeroPoints ? { location, offset: offsets.zeroPoints, length: n * L.zpRowBytes } : undefined,
    };
  }

  /**
   * Reserves a float32 weight made of the groups' rows: the groups one after the other, the
   * tensors of a group ([rows, k] each, of any float dtype) interleaved row by row.
   */
  addRows(name: string, groups: TensorLocation[][], k: number): ExternalRef {
    let n = 0;
    for (const grp of groups) {
      const rows = grp[0]!.shape[0]!;
      for (const t of grp) if (t.shape.length !== 2 || t.shape[0] !== rows || t.shape[1] !== k) throw new ModelLoadError(`${t.name} has shape [${t.shape}], expected [${rows}, ${k}]`);
      n += rows * grp.length;
    }
    const offset = this.reserve(n * k * 4);
    this.rowJobs.push({ name, groups, n, k, offset });
    return { location: this.path, offset, length: n * k * 4 };
  }

  get bytes(): number {
    return this.size;
  }

  /** What the file holds: each weight's source tensors (float ones by name) and its format. */
  get entries(): Array<{ name: string; floatParts: string[]; bits: NBits; blockSize: number }> {
    return this.jobs.map((j) => ({ name: j.name, floatParts: j.parts.flatMap((p) => (p.kind === 'float' ? [p.loc.name] : [])), bits: j.bits, blockSize: j.blockSize }));
  }

  get empty(): boolean {
    return this.jobs.length === 0 && this.rowJobs.length === 0;
  }

  private manifest(): string {
    const rows = this.rowJobs.map((j) => ({ ...j, groups: j.groups.map((grp) => grp.map((t) => sourceId({ kind: 'float', loc: t }))) }));
    return JSON.stringify({ v: FORMAT_VERSION, files: this.identity.files, size: this.size, jobs: this.jobs.map((j) => ({ ...j, parts: j.parts.map(sourceId) })), ...(rows.length ? { rows } : {}) });
  }

  /** True when a complete file for exactly these jobs is already in the cache. */
  get cached(): boolean {
    try {
      return statSync(this.path).size === this.size && readFileSync(this.manifestPath, 'utf8') === this.manifest();
    } catch {
      return false;
    }
  }

  /**
   * Writes the file unless it is cached; `onProgress` gets the fraction done. Float weights
   * are quantized by up to `threads` worker threads (each writing its own regions of the
   * file), pre-quantized ones repacked on this thread.
   */
  async materialize(onProgress?: (fraction: number) => void, threads = 1, parallelMinBytes = PARALLEL_MIN_BYTES): Promise<void> {
    if (this.empty || this.cached) return;
    const dir = join(this.path, '..');
    mkdirSync(dir, { recursive: true });
    pruneStale(dir);
    const free = diskFree(dir);
    if (free !== null && free < this.size) {
      throw new ModelLoadError(`not enough disk space for the quantized weights: ${(this.size / 2 ** 30).toFixed(2)} GiB needed in ${dir}, ${(free / 2 ** 30).toFixed(2)} GiB free (set IRIS_CACHE_DIR to another folder)`);
    }
    const partial = `${this.path}.partial-${process.pid}`;
    const fd = openSync(partial, 'w');
    const floatTasks: PartTask[] = [];
    const packed: Array<{ task: PartTask; part: Extract<QuantSource, { kind: 'packed' }> }> = [];
    for (const job of this.jobs) {
      const L = nbitsLayout(job.bits, job.blockSize, job.k);
      let row = 0;
      for (const part of job.parts) {
        const n = part.kind === 'float' ? part.loc.shape[0]! : part.n;
        const lane = (part.kind === 'float' && part.lane) || { index: 0, of: 1 };
        const first = row + lane.index;
        const task: PartTask = {
          name: job.name,
          bits: job.bits,
          blockSize: job.blockSize,
          k: job.k,
          n,
          b: job.offsets.b + first * L.rowBytes,
          scales: job.offsets.scales + first * L.kBlocks * 4,
          zeroPoints: job.zeroPoints ? job.offsets.zeroPoints + first * L.zpRowBytes : -1,
          stride: lane.of,
          loc: part.kind === 'float' ? part.loc : null,
        };
        if (part.kind === 'float') floatTasks.push(task);
        else packed.push({ task, part });
        if (lane.index === lane.of - 1) row += n * lane.of;
      }
    }
    const total = this.jobs.reduce((a, j) => a + j.n, 0) + this.rowJobs.reduce((a, j) => a + j.n, 0);
    let done = 0;
    let lastReport = 0;
    const progress = (rows: number) => {
      done += rows;
      if (onProgress && (done - lastReport) / total > 0.01) {
        lastReport = done;
        onProgress(done / total);
      }
    };
    try {
      for (const { task, part } of packed) {
        const q = part.repack();
        if (q.k !== task.k || q.bits !== task.bits || q.blockSize !== task.blockSize || q.n !== task.n) {
          throw new ModelLoadError(`${task.name}: repacked part ${part.id} is [${q.n}, ${q.k}] ${q.bits}-bit/${q.blockSize}, expected [${task.n}, ${task.k}] ${task.bits}-bit/${task.blockSize}`);
        }
        putRows(fd, task, 0, q);
        progress(q.n);
      }
      const bytes = floatTasks.reduce((a, t) => a + t.loc!.length, 0);
      if (threads > 1 && floatTasks.length > 1 && bytes > parallelMinBytes) await quantizeInWorkers(partial, floatTasks, threads, progress);
      else for (const t of floatTasks) quantizePart(fd, t, progress);
      for (const job of this.rowJobs) writeRows(fd, job, progress);
      closeSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(partial, { force: true });
      throw e;
    }
    renameSync(partial, this.path);
    writeFileSync(this.manifestPath, this.manifest());
    onProgress?.(1);
  }
}

/** A checkpoint file as a quantized file depends on it: [real path, size, mtimeMs]. */
export type CheckpointFile = [string, number, number];

/**
 * Removes the cache's files that can never be used again: written by another format
 * version, or for checkpoint files that changed or are gone, and partial files of
 * processes no longer running.
 */
export function pruneStale(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const unchanged = ([path, size, mtime]: CheckpointFile) => {
    try {
      const st = statSync(path);
      return st.size === size && st.mtimeMs === mtime;
    } catch {
      return false;
    }
  };
  for (const name of names) {
    const partial = /\.bin\.partial-(\d+)$/.exec(name);
    if (partial) {
      if (!alive(Number(partial[1]))) rmSync(join(dir, name), { force: true });
      continue;
    }
    if (!name.endsWith('.json')) continue;
    let m: { v?: number; files?: CheckpointFile[] };
    try {
      m = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch {
      continue;
    }
    if (m.v === FORMAT_VERSION && Array.isArray(m.files) && m.files.every(unchanged)) continue;
    rmSync(join(dir, name.replace(/\.json$/, '.bin')), { force: true });
    rmSync(join(dir, name), { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Below this many bytes of float weights, starting threads costs more than it saves. */
const PARALLEL_MIN_BYTES = 64 << 20;

/** Spreads the tasks over `threads` workers, largest first to the least loaded, and waits for them all. */
async function quantizeInWorkers(file: string, tasks: PartTask[], threads: number, progress: (rows: number) => void): Promise<void> {
  const shares: PartTask[][] = Array.from({ length: threads }, () => []);
  const load = new Array<number>(threads).fill(0);
  for (const t of [...tasks].sort((a, b) => b.loc!.length - a.loc!.length)) {
    const i = load.indexOf(Math.min(...load));
    shares[i]!.push(t);
    load[i]! += t.loc!.length;
  }
  const workers = shares.filter((s) => s.length > 0).map((share) => new Worker(new URL('./quantWorker.js', import.meta.url), { workerData: { file, tasks: share } }));
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.on('message', (m: { rows?: number; error?: string }) => {
              if (m.error) reject(new ModelLoadError(m.error));
              else if (m.rows) progress(m.rows);
              else resolve();
            });
            w.on('error', reject);
            w.on('exit', (code) => (code === 0 ? resolve() : reject(new ModelLoadError(`a quantization thread exited with code ${code}`))));
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** One part of a weight and where its rows go in the file (zeroPoints -1: none). */
export interface PartTask {
  name: string;
  bits: NBits;
  blockSize: number;
  n: number;
  k: number;
  b: number;
  scales: number;
  zeroPoints: number;
  /** Rows of the weight from one of this part's rows to the next (> 1: interleaved with other parts). */
  stride: number;
  /** The float tensor to quantize; null for a repacked one. */
  loc: TensorLocation | null;
}

/** Writes quantized rows `row0..row0+q.n` of a part at its offsets. */
function putRows(fd: number, t: PartTask, row0: number, q: NBitsWeight): void {
  const L = nbitsLayout(t.bits, t.blockSize, t.k);
  if (q.zeroPoints && t.zeroPoints < 0) throw new ModelLoadError(`${t.name}: unexpected zero points`);
  // A part whose zero points all equal the implied one comes without them.
  const zp = t.zeroPoints < 0 ? null : q.zeroPoints ?? packZeroPoints(q.bits, q.n, L.kBlocks, new Uint8Array(q.n * L.kBlocks).fill(L.defaultZero));
  const scales = new Uint8Array(q.scales.buffer, q.scales.byteOffset, q.scales.byteLength);
  const put = (data: Uint8Array, at: number, rowBytes: number) => {
    if (t.stride === 1) writeAll(fd, data, at + row0 * rowBytes);
    else for (let r = 0; r < q.n; r++) writeAll(fd, data.subarray(r * rowBytes, (r + 1) * rowBytes), at + (row0 + r) * t.stride * rowBytes);
  };
  put(q.b, t.b, L.rowBytes);
  put(scales, t.scales, L.kBlocks * 4);
  if (zp) put(zp, t.zeroPoints, L.zpRowBytes);
}

/** Quantizes a float part a chunk of rows at a time, straight from its safetensors file into `fd`. */
export function quantizePart(fd: number, t: PartTask, progress: (rows: number) => void): void {
  const loc = t.loc!;
  const { dtype, k } = floatMatrix(loc);
  const rowBytes = loc.length / t.n;
  readRowChunks(loc, CHUNK_BYTES, (row0, rows) => {
    const q = allocNBits(rows.length / rowBytes, k, t.bits, t.blockSize);
    quantizeRowsInto(q, 0, rows, dtype);
    putRows(fd, t, row0, q);
    progress(q.n);
  });
}

/** Writes a rows job's float32 rows, a group at a time. */
function writeRows(fd: number, job: RowsJob, progress: (rows: number) => void): void {
  let at = job.offset;
  for (const grp of job.groups) {
    const parts = grp.map((t) => toFloat32(readTensorBytes(t), t.dtype));
    const rows = grp[0]!.shape[0]!;
    const out = new Float32Array(rows * grp.length * job.k);
    for (let r = 0; r < rows; r++) parts.forEach((p, i) => out.set(p.subarray(r * job.k, (r + 1) * job.k), (r * grp.length + i) * job.k));
    writeAll(fd, new Uint8Array(out.buffer), at);
    at += out.byteLength;
    progress(rows * grp.length);
  }
}

function writeAll(fd: number, data: Uint8Array, position: number): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, position + off);
}

function diskFree(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return null;
  }
}
