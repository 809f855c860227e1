/**
 * Pictures of coloured shapes drawn as SVG and rasterised by sharp (librsvg), for evaluating
 * models/iris-shapes-v1 on pictures made differently from its training data (tools/shapes/data.py,
 * PIL polygons): its own outlines (a Bezier heart, a pointy-top hexagon, a plus made of two bars,
 * rounded squares), its own colour values, canvases of any width and height from 160 to 400 px,
 * tinted backgrounds, shapes placed anywhere (not on a 3 x 3 grid), small to large, slightly
 * turned, some with an outline stroke, some with crisp (aliased) edges.
 *
 * Every picture stays unambiguous: shapes never overlap (their bounding circles are apart) and
 * each one's bounding circle is at least 20 px across after a reference resize (Qwen2-VL's smart_resize with
 * max_pixels 50176, min_pixels 12544: a 400 x 160 picture becomes 336 x 140, a 400 x 400 one 224 x 224). The
 * reference is fixed, not read from the model, so every model is measured on the same pictures.
 */
import sharp from 'sharp';
import { smartResize } from '../../src/models/qwen2_vl/imageProcessing.js';

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'diamond', 'hexagon', 'cross', 'heart'] as const;
export type ShapeKind = (typeof SHAPES)[number];

/** Colour names as the model uses them, with values chosen here (not the training generator's). */
export const COLOURS: Record<string, [number, number, number]> = {
  red: [222, 38, 44],
  green: [46, 160, 72],
  blue: [42, 88, 222],
  yellow: [246, 212, 36],
  orange: [250, 138, 30],
  purple: [132, 58, 182],
  pink: [242, 132, 198],
  brown: [132, 82, 42],
  black: [30, 30, 34],
  grey: [128, 128, 132],
};
export const COLOUR_NAMES = Object.keys(COLOURS);

export interface Shape {
  kind: ShapeKind;
  colour: string;
  /** centre and bounding radius in canvas pixels */
  x: number;
  y: number;
  r: number;
  /** degrees */
  rotate: number;
  /** per-shape proportions in [0, 1] */
  form: number;
  fill: [number, number, number];
}

export interface Scene {
  width: number;
  height: number;
  background: [number, number, number];
  /** a second background colour for a gentle linear gradient, or null */
  gradientTo: [number, number, number] | null;
  stroke: { width: number; dark: boolean } | null;
  crisp: boolean;
  shapes: Shape[];
}

/** The reference resize that sizes are measured in: [h, w]. */
export function referenceSize(height: number, width: number): [number, number] {
  return smartResize(height, width, 28, 12544, 50176);
}

type Rng = () => number;
const uniform = (rand: Rng, a: number, b: number) => a + (b - a) * rand();
const pick = <T>(rand: Rng, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
function sample<T>(rand: Rng, xs: readonly T[], n: number): T[] {
  const pool = [...xs];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(pool.splice(Math.floor(rand() * pool.length), 1)[0]!);
  return out;
}

function hslToRgb(h: number, s: number, l: number): [number, number, number] {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return [Math.round(255 * f(0)), Math.round(255 * f(8)), Math.round(255 * f(4))];
}

const dist = (a: readonly number[], b: readonly number[]) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!);

/** A pale tinted background (sometimes white) far from every shape colour, so shapes stand out. */
function background(rand: Rng): [number, number, number] {
  if (rand() < 0.15) return [255, 255, 255];
  for (;;) {
    const c = hslToRgb(uniform(rand, 0, 360), uniform(rand, 0.15, 0.65), uniform(rand, 0.86, 0.96));
    if (COLOUR_NAMES.every((n) => dist(c, COLOURS[n]!) > 95)) return c;
  }
}

/** How far each kind may turn: a square past ~15 degrees starts to read as a diamond, a cross as an X. */
const MAX_TURN: Record<ShapeKind, number> = {
  circle: 0, square: 12, triangle: 12, star: 36, diamond: 12, hexagon: 30, cross: 12, heart: 12,
};

/** A seeded scene with n shapes (1-4, each kind at most once). */
export function makeScene(rand: Rng, n?: number): Scene {
  const width = 160 + Math.floor(rand() * 241);
  const height = 160 + Math.floor(rand() * 241);
  const count = n ?? 1 + Math.floor(rand() * 4);
  const [ph, pw] = referenceSize(height, width);
  const scale = Math.min(pw / width, ph / height); // canvas px -> reference px
  const minR = 10 / scale; // 20 reference px across
  const short = Math.min(width, height);
  const maxR = Math.max(minR * 1.2, short * (count === 1 ? 0.4 : count === 2 ? 0.3 : 0.22));
  const kinds = sample(rand, SHAPES, count);
  let shapes: Shape[] = [];
  for (let attempt = 0; attempt < 500; attempt++) {
    // Shrink the upper size bound as attempts fail, so crowded canvases still find room.
    const hi = Math.max(minR, maxR * Math.pow(0.995, attempt));
    shapes = [];
    for (const kind of kinds) {
      const r = uniform(rand, minR, hi);
      const margin = r + 4;
      if (2 * margin >= width || 2 * margin >= height) break;
      const x = uniform(rand, margin, width - margin);
      const y = uniform(rand, margin, height - margin);
      if (shapes.some((s) => Math.hypot(s.x - x, s.y - y) < s.r + r + 6)) break;
      const colour = pick(rand, COLOUR_NAMES);
      const base = COLOURS[colour]!;
      const fill = base.map((v) => Math.max(0, Math.min(255, Math.round(v + uniform(rand, -10, 10))))) as [number, number, number];
      shapes.push({ kind, colour, x, y, r, rotate: uniform(rand, -1, 1) * MAX_TURN[kind], form: rand(), fill });
    }
    if (shapes.length === count) break;
  }
  if (shapes.length !== count) throw new Error(`no room for ${count} shapes on ${width}x${height}`);
  shapes.sort((a, b) => SHAPES.indexOf(a.kind) - SHAPES.indexOf(b.kind));
  const bg = background(rand);
  const gradientTo =
    rand() < 0.3 ? (bg.map((v) => Math.max(0, Math.min(255, v - 18 + Math.floor(rand() * 10)))) as [number, number, number]) : null;
  const stroke = rand() < 0.3 ? { width: uniform(rand, 1, 3), dark: rand() < 0.5 } : null;
  return { width, height, background: bg, gradientTo, stroke, crisp: rand() < 0.2, shapes };
}

const fmt = (v: number) => (Math.round(v * 100) / 100).toString();
const points = (pts: [number, number][]) => pts.map(([x, y]) => `${fmt(x)},${fmt(y)}`).join(' ');
const rgb = (c: readonly number[]) => `rgb(${c[0]},${c[1]},${c[2]})`;

/** Points on a circle of radius rad around (x, y), starting at angle a0 (degrees, 0 = right, clockwise). */
function ring(x: number, y: number, rad: number, n: number, a0: number): [number, number][] {
  return Array.from({ length: n }, (_, i) => {
    const a = ((a0 + (360 * i) / n) * Math.PI) / 180;
    return [x + rad * Math.cos(a), y + rad * Math.sin(a)] as [number, number];
  });
}

/** One shape as an SVG element whose outline fits inside the circle of radius r. */
function shapeElement(s: Shape): string {
  const { x, y, r, form } = s;
  switch (s.kind) {
    case 'circle':
      return `<circle cx="${fmt(x)}" cy="${fmt(y)}" r="${fmt(r * 0.92)}"/>`;
    case 'square': {
      const half = r * 0.68; // corners at 0.96 r
      const round = half * 0.12 * form;
      return `<rect x="${fmt(x - half)}" y="${fmt(y - half)}" width="${fmt(2 * half)}" height="${fmt(2 * half)}" rx="${fmt(round)}"/>`;
    }
    case 'triangle': // equilateral, apex up, centred on its circumcentre
      return `<polygon points="${points(ring(x, y + r * 0.12, r * 0.95, 3, -90))}"/>`;
    case 'star': {
      const inner = 0.4 + 0.1 * form;
      const outer = ring(x, y, r * 0.98, 5, -90);
      const inn = ring(x, y, r * 0.98 * inner, 5, -54);
      return `<polygon points="${points(outer.flatMap((p, i) => [p, inn[i]!]))}"/>`;
    }
    case 'diamond': {
      const w = r * (0.55 + 0.15 * form);
      return `<polygon points="${points([[x, y - r * 0.97], [x + w, y], [x, y + r * 0.97], [x - w, y]])}"/>`;
    }
    case 'hexagon': // pointy top
      return `<polygon points="${points(ring(x, y, r * 0.95, 6, -90))}"/>`;
    case 'cross': {
      const arm = r * 0.66; // bar end corners stay within r
      const t = r * (0.17 + 0.06 * form);
      const d = [
        [x - t, y - arm], [x + t, y - arm], [x + t, y - t], [x + arm, y - t], [x + arm, y + t], [x + t, y + t],
        [x + t, y + arm], [x - t, y + arm], [x - t, y + t], [x - arm, y + t], [x - arm, y - t], [x - t, y - t],
      ] as [number, number][];
      return `<polygon points="${points(d)}"/>`;
    }
    case 'heart': {
      // two lobes and a point, as cubic Bezier curves, in a unit box scaled to r
      const k = r * 0.9;
      const P = (u: number, v: number) => `${fmt(x + u * k)},${fmt(y + v * k)}`;
      return (
        `<path d="M ${P(0, 0.95)} C ${P(-0.55, 0.55)} ${P(-1.05, 0.15)} ${P(-1.0, -0.35)} ` +
        `C ${P(-0.95, -0.85)} ${P(-0.3, -0.95)} ${P(0, -0.5)} ` +
        `C ${P(0.3, -0.95)} ${P(0.95, -0.85)} ${P(1.0, -0.35)} ` +
        `C ${P(1.05, 0.15)} ${P(0.55, 0.55)} ${P(0, 0.95)} Z"/>`
      );
    }
  }
}

export function toSvg(scene: Scene): string {
  const { width, height } = scene;
  const defs = scene.gradientTo
    ? `<defs><linearGradient id="bg" x1="0" y1="0" x2="${scene.width > scene.height ? 1 : 0}" y2="${scene.width > scene.height ? 0 : 1}">` +
      `<stop offset="0" stop-color="${rgb(scene.background)}"/><stop offset="1" stop-color="${rgb(scene.gradientTo)}"/></linearGradient></defs>`
    : '';
  const bgFill = scene.gradientTo ? 'url(#bg)' : rgb(scene.background);
  const body = scene.shapes
    .map((s) => {
      const stroke = scene.stroke
        ? ` stroke="${rgb(scene.stroke.dark ? [35, 35, 35] : s.fill.map((v) => Math.round(v * 0.55)))}" stroke-width="${fmt(scene.stroke.width)}" stroke-linejoin="round"`
        : '';
      return `<g transform="rotate(${fmt(s.rotate)} ${fmt(s.x)} ${fmt(s.y)})" fill="${rgb(s.fill)}"${stroke}>${shapeElement(s)}</g>`;
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}"` +
    `${scene.crisp ? ' shape-rendering="crispEdges"' : ''}>${defs}<rect width="${width}" height="${height}" fill="${bgFill}"/>${body}</svg>`
  );
}

/** The scene as an RGB PNG of exactly width x height pixels. */
export async function renderPng(scene: Scene): Promise<Buffer> {
  return sharp(Buffer.from(toSvg(scene)), { density: 72 }).removeAlpha().png().toBuffer();
}
