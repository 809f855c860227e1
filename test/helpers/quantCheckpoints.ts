/**
 * Tiny AWQ / GPTQ layer tensors with known integer codes, packed the way AutoAWQ,
 * AutoGPTQ and GPTQModel write them, and the float weights those codes stand for,
 * computed here without the code under test.
 */
import { F16_TABLE } from '../../src/runtime/safetensors.js';

export { rng } from './rng.js';

export function randomInts(count: number, below: number, r: () => number): Uint8Array {
  return Uint8Array.from({ length: count }, () => Math.floor(r() * below));
}

/** Positive float16 bit patterns between 2^-9 and 2^-2, as checkpoint scales. */
export function randomHalfScales(count: number, r: () => number): Uint16Array {
  return Uint16Array.from({ length: count }, () => ((6 + Math.floor(r() * 7)) << 10) | Math.floor(r() * 1024));
}

/**
 * w[n][k] = (code - zero) * scale, the float weights [n, k] of codes [K, N]
 * (k-major, as checkpoints hold them), zeros and scales [groups, N], g_idx = k/group.
 */
export function referenceWeights(codes: Uint8Array, zeros: Uint8Array, scales: Uint16Array, k: number, n: number, group: number): Float32Array {
  const w = new Float32Array(n * k);
  for (let kk = 0; kk < k; kk++) {
    const grp = Math.floor(kk / group);
    for (let nn = 0; nn < n; nn++) {
      w[nn * k + kk] = (codes[kk * n + nn]! - zeros[grp * n + nn]!) * F16_TABLE[scales[grp * n + nn]!]!;
    }
  }
  return w;
}

const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];

/** Packs a [rows, cols] matrix of 4-bit values along cols in AutoAWQ's interleaved order. */
function packAwqRows(values: Uint8Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols / 8; c++) {
      let word = 0;
      for (let i = 0; i < 8; i++) word |= values[r * cols + c * 8 + AWQ_ORDER[i]!]! << (4 * i);
      out[r * (cols / 8) + c] = word;
    }
  }
  return out;
}

/** AutoAWQ gemm qweight [K, N/8] and qzeros [K/group, N/8] from codes [K, N] and zeros [K/group, N]. */
export function packAwq(codes: Uint8Array, zeros: Uint8Array, k: number, n: number, group: number): { qweight: Int32Array; qzeros: Int32Array } {
  return { qweight: packAwqRows(codes, k, n), qzeros: packAwqRows(zeros, k / group, n) };
}

/**
 * GPTQ qweight [K*bits/32, N] (packed along K) and qzeros [groups, N*bits/32]
 * (packed along N). v1 ("gptq") stores zero - 1: `autogptq` subtracts 1 from each
 * zero before packing (AutoGPTQ's pack; zeros must be >= 1), `gptqmodel` subtracts
 * 0x11111111 / 0x01010101 from each packed word, borrows included (GPTQModel's v2 -> v1).
 */
export function packGptq(
  codes: Uint8Array,
  zeros: Uint8Array,
  k: number,
  n: number,
  bits: 4 | 8,
  format: 'gptq_v2' | 'autogptq' | 'gptqmodel',
): { qweight: Int32Array; qzeros: Int32Array } {
  const per = 32 / bits;
  const groups = zeros.length / n;
  const qweight = new Int32Array((k / per) * n);
  for (let r = 0; r < k / per; r++) {
    for (let c = 0; c < n; c++) {
      let word = 0;
      for (let j = 0; j < per; j++) word |= codes[(r * per + j) * n + c]! << (bits * j);
      qweight[r * n + c] = word;
    }
  }
  const qzeros = new Int32Array((groups * n) / per);
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < n / per; c++) {
      let word = 0;
      for (let j = 0; j < per; j++) {
        const z = zeros[g * n + c * per + j]!;
        if (format === 'autogptq' && z < 1) throw new Error('AutoGPTQ v1 packing needs zeros >= 1');
        word |= (format === 'autogptq' ? z - 1 : z) << (bits * j);
      }
      if (format === 'gptqmodel') word = (word - (bits === 4 ? 0x11111111 : 0x01010101)) | 0;
      qzeros[g * (n / per) + c] = word;
    }
  }
  return { qweight, qzeros };
}

export { type RawTensor, writeSafetensors } from '../../tools/safetensorsWriter.js';
