import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { ImageError } from '../../src/errors.js';
import { decodeImage, sniffImageFormat, toRgb } from '../../src/multimodal/decode.js';
import { byteDiff, pilIndex, readPil } from './fixtures.js';

// Expected bytes: PIL Image.open -> ImageOps.exif_transpose -> (RGBA/LA/P+transparency:
// convert("RGBA") and paste onto white with the alpha as mask) -> convert("RGB").
// Lossless formats must match exactly. The JPEG and lossy WebP allow a small tolerance
// (stated per case in index.json): PIL links libjpeg-turbo 2.1.5 / libwebp 1.2.4 while
// sharp bundles mozjpeg / libwebp 1.6.0, whose IDCT / chroma upsampling may round differently.
for (const c of pilIndex.decode) {
  test(`decodeImage matches PIL: ${c.name}`, async () => {
    const img = await decodeImage(readPil(c.input));
    assert.deepEqual([img.width, img.height], c.size);
    const expected = readPil(c.expected);
    assert.equal(img.data.length, expected.length);
    const d = byteDiff(img.data, expected);
    assert.ok(d.max <= c.tolerance, `max diff ${d.max} over ${d.count} bytes exceeds tolerance ${c.tolerance}`);
  });
}

test('JPEG with EXIF orientation 6 comes out rotated (stored 48x32, shown 32x48)', async () => {
  const img = await decodeImage(readPil('decode_exif6.jpg'));
  assert.deepEqual([img.width, img.height], [32, 48]);
});

test('alpha compositing uses PIL DIV255 rounding', () => {
  // fg 0 under alpha 1..254 and fg 255 under alpha 0, checked against the formula itself
  const px: number[] = [];
  for (let a = 0; a < 256; a++) px.push(a & 1 ? 0 : 137, 255, a % 7, a);
  const out = toRgb(Uint8Array.from(px), 256, 1, 4);
  const div255 = (v: number) => (((v + 128) >> 8) + (v + 128)) >> 8;
  for (let a = 0; a < 256; a++) {
    for (let c = 0; c < 3; c++) {
      const fg = px[a * 4 + c]!;
      assert.equal(out.data[a * 3 + c], div255(fg * a + 255 * (255 - a)), `a=${a} c=${c}`);
    }
  }
  assert.deepEqual(Array.from(out.data.subarray(0, 3)), [255, 255, 255]); // alpha 0 -> white
});

test('sniffImageFormat recognises the four formats by magic bytes', () => {
  assert.equal(sniffImageFormat(readPil('decode_grey.png')), 'png');
  assert.equal(sniffImageFormat(readPil('decode_exif6.jpg')), 'jpeg');
  assert.equal(sniffImageFormat(readPil('decode_anim.gif')), 'gif');
  assert.equal(sniffImageFormat(readPil('decode_lossless.webp')), 'webp');
  assert.equal(sniffImageFormat(new TextEncoder().encode('BM\u0000\u0000')), null);
});

async function rejectsWith(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ImageError, `expected ImageError, got ${String(e)}`);
    assert.equal(e.status, 400);
    assert.match(e.message, re);
    return true;
  });
}

test('garbage bytes are not a supported image', async () => {
  await rejectsWith(decodeImage(new TextEncoder().encode('hello, this is not an image')), /^not a supported image \(got \d+ bytes starting 68 65/);
  await rejectsWith(decodeImage(new Uint8Array(0)), /not a supported image \(got empty data\)/);
  await rejectsWith(decodeImage(Uint8Array.from([0x42, 0x4d, 1, 2, 3, 4])), /not a supported image \(got BMP\)/);
  await rejectsWith(decodeImage(new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"/>')), /got SVG/);
});

test('truncated PNG is rejected with the decoder cause', async () => {
  const png = readPil('resize_mix_300x200_to_112x70.png');
  await rejectsWith(decodeImage(png.subarray(0, Math.floor(png.length / 2))), /^cannot decode PNG image: \S/);
  await rejectsWith(decodeImage(png.subarray(0, 20)), /^cannot decode PNG image/);
});

test('truncated JPEG and corrupt GIF/WebP are rejected', async () => {
  const jpg = readPil('decode_exif6.jpg');
  await rejectsWith(decodeImage(jpg.subarray(0, Math.floor(jpg.length * 0.6))), /^cannot decode JPEG image/);
  const gif = readPil('decode_anim.gif');
  await rejectsWith(decodeImage(gif.subarray(0, 12)), /^cannot decode GIF image/);
  const webp = readPil('decode_lossless.webp');
  await rejectsWith(decodeImage(webp.subarray(0, 40)), /^cannot decode WebP image/);
});

/** A PNG whose header claims width x height but carries almost no pixel data. */
function hugePngHeader(width: number, height: number): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(td.length + 8);
    out.writeUInt32BE(data.length, 0);
    td.copy(out, 4);
    out.writeUInt32BE(crc(td), td.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(16))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('too many pixels is rejected from the header, naming the size', async () => {
  await rejectsWith(decodeImage(readPil('resize_mix_300x200_to_112x70.png'), { maxPixels: 50_000 }),
    /300x200 = 60000 pixels, the limit is 50000/);
  // 30000x30000 would need 2.7 GB if decoded: the header check must refuse it first.
  await rejectsWith(decodeImage(hugePngHeader(30000, 30000), { maxPixels: 16_000_000 }),
    /^image is too large: 30000x30000 = 900000000 pixels/);
  // within the limit it decodes
  const ok = await decodeImage(readPil('resize_mix_300x200_to_112x70.png'), { maxPixels: 60_000 });
  assert.equal(ok.width * ok.height, 60_000);
});
