/**
 * Vision encoding time of the LLaVA families' towers at their released sizes, random weights:
 * CLIP ViT-L/14 at 336 (LLaVA-1.5 and -NeXT; one 336x336 piece, 576 tokens) and SigLIP-SO400M/14
 * at 384 (LLaVA-OneVision, 26 of its 27 layers; one 384x384 piece, 729 tokens), each with the
 * LLaVA projector, float32 and with int8 linears, in the same run. Checkpoints are written once
 * under ~/.cache/iris-bench (IRIS_BENCH_DIR's parent). Run with `npm run bench:towers`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { buildClipVisionGraph, CLIP_INPUTS } from '../src/models/llava/clipVision.js';
import { ClipVisionConfig } from '../src/models/clipTower.js';
import { quantPolicies, sessionQuant } from '../src/runtime/quant/policy.js';
import { GraphSession } from '../src/runtime/session.js';
import { WeightStore } from '../src/runtime/weightStore.js';
import { RawTensor, writeSafetensors } from '../tools/safetensorsWriter.js';

const THREADS = 2;
const TOWERS: Array<{ name: string; cfg: ClipVisionConfig; textHidden: number; layer: number; dropCls: boolean }> = [
  { name: 'CLIP ViT-L/14-336 (LLaVA-1.5/NeXT)', cfg: { kind: 'clip', hiddenSize: 1024, intermediateSize: 4096, numLayers: 24, numHeads: 16, imageSize: 336, patchSize: 14, layerNormEps: 1e-5, activation: 'quick_gelu' }, textHidden: 4096, layer: -2, dropCls: true },
  { name: 'SigLIP-SO400M/14-384 (OneVision)', cfg: { kind: 'siglip', hiddenSize: 1152, intermediateSize: 4304, numLayers: 26, numHeads: 16, imageSize: 384, patchSize: 14, layerNormEps: 1e-6, activation: 'gelu_pytorch_tanh' }, textHidden: 3584, layer: -1, dropCls: false },
];

/** A random BF16 tensor (uniform in +-0.03: what matters here is the shapes). */
function bf16(name: string, shape: number[], seed: number, ones = false): RawTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint16Array(n);
  let s = seed >>> 0 || 1;
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    f[0] = (ones ? 1 : 0) + ((s >>> 0) / 4294967296 - 0.5) * 0.06;
    out[i] = u[0]! >>> 16;
  }
  return { name, dtype: 'BF16', shape, data: new Uint8Array(out.buffer) };
}

function writeTower(dir: string, t: (typeof TOWERS)[number]): void {
  const { cfg } = t;
  const D = cfg.hiddenSize;
  const G = Math.floor(cfg.imageSize / cfg.patchSize);
  const p = 'vision_tower.vision_model';
  let seed = 1;
  const ts: RawTensor[] = [bf16(`${p}.embeddings.patch_embedding.weight`, [D, 3, cfg.patchSize, cfg.patchSize], seed++)];
  if (cfg.kind === 'siglip') {
    ts.push(bf16(`${p}.embeddings.patch_embedding.bias`, [D], seed++), bf16(`${p}.embeddings.position_embedding.weight`, [G * G, D], seed++));
  } else {
    ts.push(bf16(`${p}.embeddings.class_embedding`, [D], seed++), bf16(`${p}.embeddings.position_embedding.weight`, [G * G + 1, D], seed++));
    ts.push(bf16(`${p}.pre_layrnorm.weight`, [D], seed++, true), bf16(`${p}.pre_layrnorm.bias`, [D], seed++));
  }
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `${p}.encoder.layers.${i}`;
    for (const n of ['layer_norm1', 'layer_norm2']) ts.push(bf16(`${l}.${n}.weight`, [D], seed++, true), bf16(`${l}.${n}.bias`, [D], seed++));
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) ts.push(bf16(`${l}.self_attn.${n}.weight`, [D, D], seed++), bf16(`${l}.self_attn.${n}.bias`, [D], seed++));
    ts.push(bf16(`${l}.mlp.fc1.weight`, [cfg.intermediateSize, D], seed++), bf16(`${l}.mlp.fc1.bias`, [cfg.intermediateSize], seed++));
    ts.push(bf16(`${l}.mlp.fc2.weight`, [D, cfg.intermediateSize], seed++), bf16(`${l}.mlp.fc2.bias`, [D], seed++));
  }
  ts.push(bf16('multi_modal_projector.linear_1.weight', [t.textHidden, D], seed++), bf16('multi_modal_projector.linear_1.bias', [t.textHidden], seed++));
  ts.push(bf16('multi_modal_projector.linear_2.weight', [t.textHidden, t.textHidden], seed++), bf16('multi_modal_projector.linear_2.bias', [t.textHidden], seed++));
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), ts);
}

async function encodeSeconds(dir: string, t: (typeof TOWERS)[number], int8: boolean): Promise<number> {
  const store = WeightStore.open(dir);
  const quant = int8 ? sessionQuant(store, 'vision', quantPolicies('int8').vision) : null;
  const { g, w } = buildClipVisionGraph(store, t.cfg, { layer: t.layer, dropClassToken: t.dropCls }, { prefix: 'multi_modal_projector', textHidden: t.textHidden }, 'vision_tower.vision_model', quant);
  await w.prepare(undefined, THREADS);
  const session = await GraphSession.create(g, w, { intraOpThreads: THREADS });
  try {
    const S = t.cfg.imageSize;
    const pixels = new Float32Array(3 * S * S).map((_, i) => Math.sin(i) * 0.5);
    const run = () => session.run({ [CLIP_INPUTS.pixels]: { data: pixels, dims: [1, 3, S, S] } });
    await run();
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      await run();
      times.push((performance.now() - t0) / 1000);
    }
    return Math.min(...times);
  } finally {
    await session.release();
  }
}

const root = join(homedir(), '.cache', 'iris-bench');
const rows: string[] = [];
for (const t of TOWERS) {
  const dir = join(root, t.name.split(' ')[0]!.toLowerCase() + '-' + t.cfg.imageSize);
  if (!existsSync(join(dir, 'model.safetensors'))) writeTower(dir, t);
  const f32 = await encodeSeconds(dir, t, false);
  const i8 = await encodeSeconds(dir, t, true);
  const G = Math.floor(t.cfg.imageSize / t.cfg.patchSize);
  rows.push(`${t.name.padEnd(40)} ${String(G * G).padStart(5)} tokens/piece   float32 ${f32.toFixed(2)} s   int8 ${i8.toFixed(2)} s   int8/float32 ${(i8 / f32).toFixed(2)}x`);
  process.stderr.write(`[bench] ${rows[rows.length - 1]}\n`);
}
process.stdout.write(`\nvision encoding of one piece (best of 3, ${THREADS} threads)\n${rows.join('\n')}\n`);
