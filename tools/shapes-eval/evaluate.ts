/**
 * Accuracy of models/iris-shapes-v1 (or any model folder) on pictures drawn by svgScene.ts, a
 * renderer that shares no code with the training generator (tools/shapes/data.py). Scoring follows
 * tools/shapes/evaluate.py: describe is right when the set of "colour shape" pairs named equals the
 * picture's; count when the first number is the number of shapes; colour and yes/no when the answer
 * is exactly the sentence the training data uses.
 *
 *   npx tsc -p . && node dist/tools/shapes-eval/evaluate.js --model-path models/iris-shapes-v1
 *   node dist/tools/shapes-eval/evaluate.js --url http://127.0.0.1:PORT     # a running `iris serve`
 *
 * Options: --n 200 (pictures), --seed 7331, --concurrency 2, --dump FILE (every answer as JSON),
 * --save DIR (the PNGs). Requests go to POST /v1/chat/completions with PNG data URIs, temperature 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { rng } from '../../test/helpers/rng.js';
import { COLOUR_NAMES, SHAPES, makeScene, referenceSize, renderPng, type Scene } from './svgScene.js';

const article = (w: string) => ('aeiou'.includes(w[0]!) ? 'an' : 'a');
const phrase = (c: string, k: string) => `${article(c)} ${c} ${k}`;

function describeSentence(scene: Scene): string {
  const items = scene.shapes.map((s) => phrase(s.colour, s.kind));
  const text = items.length === 1 ? items[0]! : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
  return text[0]!.toUpperCase() + text.slice(1) + '.';
}

/** The training data's yes/no sentence for "Is there a <c> <k>?" about this scene. */
function yesnoSentence(scene: Scene, c: string, k: string): string {
  const s = scene.shapes.find((t) => t.kind === k);
  if (!s) return `There is no ${k}.`;
  return s.colour === c ? `There is ${phrase(c, k)}.` : `There is ${phrase(s.colour, k)}, but no ${c} ${k}.`;
}

const PAIR_RE = new RegExp(`\\b(${COLOUR_NAMES.join('|')}) (${SHAPES.join('|')})s?\\b`, 'g');
const pairsIn = (text: string) => [...new Set([...text.toLowerCase().matchAll(PAIR_RE)].map((m) => `${m[1]} ${m[2]}`))].sort();

interface Item {
  category: 'describe' | 'count' | 'colour' | 'yesno';
  picture: number;
  question: string;
  expected: string;
  check: (answer: string) => boolean;
}

function itemsFor(scene: Scene, picture: number, rand: () => number): Item[] {
  const truth = scene.shapes.map((s) => `${s.colour} ${s.kind}`).sort();
  const one = scene.shapes[Math.floor(rand() * scene.shapes.length)]!;
  let c: string;
  let k: string;
  if (rand() < 0.5) {
    [c, k] = [one.colour, one.kind];
  } else {
    // absent pair, often sharing the colour or the kind of a shape that is there
    for (;;) {
      const r = rand();
      const any = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
      if (r < 0.35) [c, k] = [any(scene.shapes).colour, any(SHAPES)];
      else if (r < 0.7) [c, k] = [any(COLOUR_NAMES), any(scene.shapes).kind];
      else [c, k] = [any(COLOUR_NAMES), any(SHAPES)];
      if (!scene.shapes.some((s) => s.colour === c && s.kind === k)) break;
    }
  }
  const yn = yesnoSentence(scene, c, k);
  const n = scene.shapes.length;
  return [
    {
      category: 'describe', picture, question: 'What is in this image?', expected: describeSentence(scene),
      check: (a) => JSON.stringify(pairsIn(a)) === JSON.stringify(truth),
    },
    {
      category: 'count', picture, question: 'How many shapes are there?',
      expected: n === 1 ? 'There is 1 shape.' : `There are ${n} shapes.`,
      check: (a) => Number(/\d+/.exec(a)?.[0]) === n,
    },
    {
      category: 'colour', picture, question: `What colour is the ${one.kind}?`, expected: `The ${one.kind} is ${one.colour}.`,
      check: (a) => a.trim() === `The ${one.kind} is ${one.colour}.`,
    },
    { category: 'yesno', picture, question: `Is there ${article(c)} ${c} ${k}?`, expected: yn, check: (a) => a.trim() === yn },
  ];
}

async function chat(url: string, png: Buffer, question: string): Promise<string> {
  const body = JSON.stringify({
    model: 'iris', temperature: 0, max_tokens: 128,
    messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } },
      { type: 'text', text: question },
    ] }],
  });
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
      const json = (await res.json()) as { choices: { message: { content: string } }[] };
      return json.choices[0]!.message.content;
    } catch (e) {
      if (attempt === 4) throw e;
      await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
    }
  }
}

function startServer(modelPath: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '--model-path', modelPath, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      const m = /Iris is ready at (http:\/\/\S+)/.exec(line);
      if (m) resolve({ proc, url: m[1]! });
    });
    proc.on('exit', (code) => reject(new Error(`server exited (${code}) before it was ready`)));
  });
}

/** Bucket labels for the breakdown: where the failures concentrate. */
function traits(scene: Scene): Record<string, string> {
  const [ph, pw] = referenceSize(scene.height, scene.width);
  const scale = Math.min(pw / scene.width, ph / scene.height);
  const smallest = Math.min(...scene.shapes.map((s) => 2 * s.r * scale));
  const ratio = scene.width / scene.height;
  return {
    shapes: String(scene.shapes.length),
    'smallest shape (px across at the reference resize)': smallest < 30 ? '20-30' : smallest < 45 ? '30-45' : '45+',
    aspect: ratio > 1.4 ? 'wide (>1.4)' : ratio < 1 / 1.4 ? 'tall (<1/1.4)' : 'near square',
    outline: scene.stroke ? 'yes' : 'no',
    edges: scene.crisp ? 'crisp' : 'smooth',
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' }, 'model-path': { type: 'string' }, n: { type: 'string', default: '200' },
      seed: { type: 'string', default: '7331' }, concurrency: { type: 'string', default: '2' },
      dump: { type: 'string' }, save: { type: 'string' },
    },
  });
  const n = Number(values.n);
  const rand = rng(Number(values.seed));
  const scenes: Scene[] = [];
  const items: Item[] = [];
  for (let i = 0; i < n; i++) {
    const scene = makeScene(rand);
    scenes.push(scene);
    items.push(...itemsFor(scene, i, rand));
  }
  const pngs = await Promise.all(scenes.map(renderPng));
  if (values.save) {
    mkdirSync(values.save, { recursive: true });
    pngs.forEach((p, i) => writeFileSync(join(values.save!, `${String(i).padStart(3, '0')}.png`), p));
  }
  let server: ChildProcess | null = null;
  let url = values.url;
  if (!url) {
    if (!values['model-path']) throw new Error('give --url or --model-path');
    const s = await startServer(values['model-path']);
    server = s.proc;
    url = s.url;
  }
  const answers: string[] = new Array(items.length);
  const t0 = Date.now();
  try {
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        answers[i] = await chat(url!, pngs[items[i]!.picture]!, items[i]!.question);
      }
    };
    await Promise.all(Array.from({ length: Number(values.concurrency) }, worker));
  } finally {
    server?.kill();
  }
  const stats = new Map<string, [number, number]>();
  const add = (key: string, ok: boolean) => {
    const st = stats.get(key) ?? [0, 0];
    st[0] += ok ? 1 : 0;
    st[1] += 1;
    stats.set(key, st);
  };
  const rows = items.map((it, i) => ({ ...it, answer: answers[i]!, correct: it.check(answers[i]!) }));
  for (const r of rows) add(r.category, r.correct);
  for (const r of rows) {
    if (r.category !== 'describe' && r.category !== 'count') continue;
    for (const [trait, value] of Object.entries(traits(scenes[r.picture]!))) add(`  ${r.category} by ${trait}: ${value}`, r.correct);
  }
  console.log(`${items.length} requests in ${Math.round((Date.now() - t0) / 1000)}s (seed ${values.seed}, ${n} pictures)`);
  for (const [key, [ok, total]] of [...stats].sort((a, b) => (a[0].startsWith(' ') ? 1 : 0) - (b[0].startsWith(' ') ? 1 : 0) || a[0].localeCompare(b[0]))) {
    console.log(`${key.padEnd(58)} ${((100 * ok) / total).toFixed(1).padStart(6)}%  ${ok}/${total}`);
  }
  const shown = new Map<string, number>();
  for (const r of rows) {
    if (r.correct || (shown.get(r.category) ?? 0) >= 4) continue;
    shown.set(r.category, (shown.get(r.category) ?? 0) + 1);
    const s = scenes[r.picture]!;
    console.log(`  WRONG ${r.category} #${r.picture} ${s.width}x${s.height} | ${r.question} | expected: ${r.expected} | got: ${r.answer}`);
  }
  if (values.dump) {
    writeFileSync(values.dump, JSON.stringify({
      stats: Object.fromEntries(stats),
      rows: rows.map(({ check: _c, ...r }) => ({ ...r, size: [scenes[r.picture]!.width, scenes[r.picture]!.height] })),
      scenes,
    }, null, 1));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
