/** Random prompts of a chosen token length and generated images, all from a seed. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { TextTokenizer } from '../../src/tokenizer/tokenizer.js';
import { ChatContentPart } from './client.js';
import { Rng, log } from './util.js';

const WORDS = (
  'the of and to in is was for on that with as by at from his her it an were are which this be or had not but one ' +
  'their first new after all also two who they has been its into more other time only some over than most such when ' +
  'year city world river house light water stone paper music garden window market bridge forest mountain island ' +
  'morning evening summer winter yellow green blue red white black small large quiet bright early late simple ' +
  'table chair door road field cloud train horse bird apple bread glass metal wood fire earth color shape number ' +
  'letter story picture question answer people child friend teacher doctor farmer painter worker engine system ' +
  'circle square corner middle left right above below near far under between across along around behind ' +
  'open close build carry watch listen speak write read count move turn hold stand walk run climb swim fly'
).split(' ');

/** Makes user texts of an exact token count under the served model's tokenizer (when it is available locally). */
export class PromptMaker {
  private readonly tokensPerWord: number;

  constructor(
    private readonly tok: TextTokenizer | null,
    private readonly rng: Rng,
  ) {
    if (tok) {
      const sample = Array.from({ length: 400 }, () => rng.pick(WORDS)).join(' ');
      this.tokensPerWord = tok.encode(sample).length / 400;
    } else {
      this.tokensPerWord = 1.3;
    }
  }

  static load(modelDir: string | null, rng: Rng): PromptMaker {
    if (modelDir && existsSync(join(modelDir, 'tokenizer.json'))) return new PromptMaker(TextTokenizer.load(modelDir), rng);
    log(`no local tokenizer (${modelDir ?? 'unknown model path'}); prompt lengths are estimated (${1.3} tokens a word)`);
    return new PromptMaker(null, rng);
  }

  get exact(): boolean {
    return this.tok !== null;
  }

  private words(n: number): string {
    return Array.from({ length: n }, () => this.rng.pick(WORDS)).join(' ');
  }

  /** Random words that tokenize to `n` tokens (exactly when a tokenizer is loaded, else about). */
  text(n: number): string {
    if (n <= 0) return '';
    const tok = this.tok;
    if (!tok) return this.words(Math.max(1, Math.round(n / this.tokensPerWord)));
    let text = this.words(Math.ceil((n / this.tokensPerWord) * 1.1) + 4);
    let ids = tok.encode(text);
    while (ids.length < n) {
      text += ' ' + this.words(Math.ceil(((n - ids.length) / this.tokensPerWord) * 1.2) + 4);
      ids = tok.encode(text);
    }
    // Cut at n tokens; re-encoding a cut text may merge differently, so nudge the cut.
    let cut = n;
    let out = tok.decode(ids.slice(0, cut));
    for (let k = 0; k < 4; k++) {
      const got = tok.encode(out).length;
      if (got === n) break;
      cut += n - got;
      if (cut < 1 || cut > ids.length) break;
      out = tok.decode(ids.slice(0, cut));
    }
    return out;
  }

  count(text: string): number {
    return this.tok ? this.tok.encode(text).length : Math.round(text.split(/\s+/).length * this.tokensPerWord);
  }
}

export type ImageFormat = 'png' | 'jpeg';

export interface GeneratedImage {
  dataUri: string;
  bytes: number;
  width: number;
  height: number;
}

/** A random picture: a gradient, a few rectangles and ellipses, and pixel noise. */
export async function makeImage(rng: Rng, width: number, height: number, format: ImageFormat): Promise<GeneratedImage> {
  const raw = Buffer.alloc(width * height * 3);
  const c0 = [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
  const c1 = [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
  const ang = rng.next() * Math.PI * 2;
  const dx = Math.cos(ang);
  const dy = Math.sin(ang);
  const span = Math.abs(dx) * width + Math.abs(dy) * height || 1;
  const off = Math.min(0, dx * width) + Math.min(0, dy * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x * dx + y * dy - off) / span;
      const o = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) raw[o + c] = c0[c]! + (c1[c]! - c0[c]!) * t;
    }
  }
  const shapes = rng.int(4, 12);
  for (let s = 0; s < shapes; s++) {
    const col = [rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)];
    const cx = rng.next() * width;
    const cy = rng.next() * height;
    const rx = (0.05 + rng.next() * 0.3) * width;
    const ry = (0.05 + rng.next() * 0.3) * height;
    const ellipse = rng.next() < 0.5;
    const x0 = Math.max(0, Math.floor(cx - rx));
    const x1 = Math.min(width, Math.ceil(cx + rx));
    const y0 = Math.max(0, Math.floor(cy - ry));
    const y1 = Math.min(height, Math.ceil(cy + ry));
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        if (ellipse && ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 > 1) continue;
        const o = (y * width + x) * 3;
        raw[o] = col[0]!;
        raw[o + 1] = col[1]!;
        raw[o + 2] = col[2]!;
      }
    }
  }
  const noise = rng.int(4, 40);
  let state = (rng.next() * 4294967296) >>> 0;
  for (let i = 0; i < raw.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const v = raw[i]! + ((state >>> 24) / 255 - 0.5) * 2 * noise;
    raw[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  const img = sharp(raw, { raw: { width, height, channels: 3 } });
  const buf = format === 'png' ? await img.png().toBuffer() : await img.jpeg({ quality: 85 }).toBuffer();
  return { dataUri: `data:image/${format};base64,${buf.toString('base64')}`, bytes: buf.length, width, height };
}

/** Hands out images: new ones, or with probability `repeatRatio` one given out before. */
export class ImagePool {
  private readonly seen: GeneratedImage[] = [];
  fresh = 0;
  repeated = 0;

  constructor(
    private readonly rng: Rng,
    private readonly width: number,
    private readonly height: number,
    private readonly format: ImageFormat,
    private readonly repeatRatio: number,
  ) {}

  async next(): Promise<GeneratedImage> {
    if (this.seen.length > 0 && this.rng.next() < this.repeatRatio) {
      this.repeated++;
      return this.rng.pick(this.seen);
    }
    const img = await makeImage(this.rng.fork(this.seen.length), this.width, this.height, this.format);
    this.seen.push(img);
    this.fresh++;
    return img;
  }
}

/** Images first, then the text: the chat content of one request. */
export function content(images: GeneratedImage[], text: string): string | ChatContentPart[] {
  if (images.length === 0) return text;
  return [...images.map((i) => ({ type: 'image_url' as const, image_url: { url: i.dataUri } })), { type: 'text' as const, text }];
}
