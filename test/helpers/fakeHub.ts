/**
 * A stand-in Hugging Face Hub on 127.0.0.1 for the src/hub tests: it speaks the HTTP API
 * the way @huggingface/hub calls it (model info, tree, paths-info, resolve with Range and
 * the LFS redirect) for repos made of files the test writes, and has knobs to misbehave
 * (stall, corrupt, cut a connection) and a log of every request.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo } from 'node:net';
import { dirname, join, relative } from 'node:path';

export const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
/** The git blob id of some contents: what the Hub reports as `oid` and huggingface_hub names small blobs by. */
export const gitBlobSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

interface FakeFile {
  data: Buffer;
  lfs: boolean;
  sha256: string;
  /** The git oid: of the contents, or of the LFS pointer file for LFS files. */
  oid: string;
  pointerSize: number;
}

/** Per-file misbehaviour. Offsets are bytes from the start of the file. */
export interface FileKnobs {
  /** Send bytes up to this offset, then nothing more (connection left open). */
  stallAt?: number;
  /** Send bytes up to this offset, then drop the connection; `cutTimes` times (default 1). */
  cutAt?: number;
  cutTimes?: number;
  /** Drop every connection after this many bytes of its body. */
  cutEvery?: number;
  /** Serve different bytes of the same length than the hashes say. */
  corrupt?: boolean;
}

export interface FakeRepo {
  id: string;
  commit: string;
  files: Map<string, FakeFile>;
  /** Branch and tag names; all point at `commit`. */
  refs: Set<string>;
  /** When set, every request needs `Authorization: Bearer <gatedToken>`. */
  gatedToken?: string;
  knobs: Map<string, FileKnobs>;
  /** The cache blob name huggingface_hub uses for a file. */
  etag(path: string): string;
}

export interface LoggedRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  kind: 'api' | 'resolve' | 'cdn';
  range?: string;
  authorization?: string;
  /** Repo and file the request reads (resolve and cdn requests). */
  repo?: string;
  file?: string;
}

export interface FakeHub {
  /** http://127.0.0.1:PORT, for HF_ENDPOINT. */
  url: string;
  repos: Map<string, FakeRepo>;
  requests: LoggedRequest[];
  /** Requests for file bytes (GET resolve or cdn, without the library's 1-byte `bytes=0-0` probe), optionally of one repo or file. */
  downloads(of?: { repo?: string; file?: string }): LoggedRequest[];
  addRepo(spec: { id: string; dir?: string; files?: Record<string, string | Buffer>; refs?: string[]; gatedToken?: string }): FakeRepo;
  close(): Promise<void>;
}

const isLfsPath = (p: string) => /\.(safetensors|bin|onnx|gguf)$/.test(p);

function readTree(dir: string, base = dir, out: Record<string, Buffer> = {}): Record<string, Buffer> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) readTree(p, base, out);
    else out[relative(base, p).split('\\').join('/')] = readFileSync(p);
  }
  return out;
}

function toFile(path: string, data: Buffer): FakeFile {
  const lfs = isLfsPath(path);
  const sha = sha256(data);
  const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${data.length}\n`);
  return { data, lfs, sha256: sha, oid: gitBlobSha1(lfs ? pointer : data), pointerSize: pointer.length };
}

function treeEntry(path: string, f: FakeFile) {
  return {
    type: 'file',
    oid: f.oid,
    size: f.data.length,
    path,
    ...(f.lfs ? { lfs: { oid: f.sha256, size: f.data.length, pointerSize: f.pointerSize } } : {}),
  };
}

function dirsOf(files: Iterable<string>): Set<string> {
  const dirs = new Set<string>();
  for (const f of files) for (let d = dirname(f); d !== '.'; d = dirname(d)) dirs.add(d);
  return dirs;
}

function parseRange(h: string | undefined, size: number): [number, number] | null {
  const m = h ? /^bytes=(\d+)-(\d*)$/.exec(h) : null;
  if (!m) return null;
  return [Number(m[1]), m[2] ? Math.min(Number(m[2]), size - 1) : size - 1];
}

export async function startFakeHub(): Promise<FakeHub> {
  const repos = new Map<string, FakeRepo>();
  const requests: LoggedRequest[] = [];

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const notFound = (res: ServerResponse, code: string, error: string) => sendJson(res, 404, { error }, { 'x-error-code': code });

  /** Splits "ORG/NAME/<keyword>/..." or "NAME/<keyword>/..." (or a bare repo id) into the repo id and the rest. */
  const splitRepo = (segs: string[], keywords: string[]): [string, string[]] | null => {
    if (segs.length >= 3 && keywords.includes(segs[2]!)) return [segs.slice(0, 2).join('/'), segs.slice(2)];
    if (segs.length >= 2 && keywords.includes(segs[1]!)) return [segs[0]!, segs.slice(1)];
    if (segs.length >= 1 && segs.length <= 2) return [segs.join('/'), []];
    return null;
  };

  /** Repo and revision checks every repo route shares; returns null after answering with an error. */
  const access = (req: IncomingMessage, res: ServerResponse, id: string, rev: string | undefined): FakeRepo | null => {
    const repo = repos.get(id);
    if (!repo) return notFound(res, 'RepoNotFound', 'Repository not found'), null;
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      sendJson(res, 401, { error: `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.` }, { 'x-error-code': 'GatedRepo' });
      return null;
    }
    if (rev !== undefined && rev !== repo.commit && !repo.refs.has(rev)) return notFound(res, 'RevisionNotFound', `Invalid rev id: ${rev}`), null;
    return repo;
  };

  const sendBytes = (req: IncomingMessage, res: ServerResponse, repo: FakeRepo, path: string, headers: Record<string, string>) => {
    const f = repo.files.get(path)!;
    const knobs = repo.knobs.get(path) ?? {};
    let data = f.data;
    if (knobs.corrupt) {
      data = Buffer.from(data);
      for (let i = 0; i < data.length; i += 97) data[i] = data[i]! ^ 0xff;
    }
    const size = data.length;
    const range = parseRange(req.headers.range, size);
    if (range && range[0] >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      return res.end();
    }
    const [start, end] = range ?? [0, size - 1];
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      'content-length': String(end - start + 1),
      ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === 'HEAD') return res.end();
    const body = data.subarray(start, end + 1);
    // The knobs spare the library's 1-byte probes, as a real fault would mostly hit big bodies.
    if (body.length > 1 && knobs.stallAt !== undefined && knobs.stallAt >= start && knobs.stallAt <= end) {
      res.write(body.subarray(0, knobs.stallAt - start));
      return; // never ends: the client must give up
    }
    if (body.length > 1 && knobs.cutAt !== undefined && (knobs.cutTimes ?? 1) > 0 && knobs.cutAt > start && knobs.cutAt <= end) {
      knobs.cutTimes = (knobs.cutTimes ?? 1) - 1;
      res.write(body.subarray(0, knobs.cutAt - start), () => res.socket?.destroy());
      return;
    }
    if (body.length > 1 && knobs.cutEvery !== undefined && knobs.cutEvery < body.length) {
      res.write(body.subarray(0, knobs.cutEvery), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  };

  const server = createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const segs = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const log: LoggedRequest = { method: req.method ?? 'GET', url: req.url ?? '', kind: 'api', range: req.headers.range, authorization: req.headers.authorization };
    requests.push(log);
    let bodyText = '';
    for await (const chunk of req) bodyText += chunk;

    if (segs[0] === 'api' && segs[1] === 'models') {
      const split = splitRepo(segs.slice(2), ['revision', 'tree', 'paths-info']);
      if (!split) return notFound(res, 'RepoNotFound', 'Repository not found');
      const [id, rest] = split;
      const [what, rev, ...sub] = rest;
      if (what === undefined || what === 'revision') {
        const repo = access(req, res, id, what ? rev : 'main');
        if (!repo) return;
        return sendJson(res, 200, {
          _id: `id-${id}`,
          id,
          sha: repo.commit,
          private: !!repo.gatedToken,
          gated: repo.gatedToken ? 'manual' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2025-01-01T00:00:00.000Z',
          siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
        });
      }
      const repo = access(req, res, id, rev);
      if (!repo) return;
      if (what === 'tree') {
        const base = sub.join('/');
        const recursive = u.searchParams.get('recursive') === 'true';
        const under = (p: string) => (base ? p.startsWith(`${base}/`) : true) && (recursive || !p.slice(base ? base.length + 1 : 0).includes('/'));
        if (base && !dirsOf(repo.files.keys()).has(base)) return notFound(res, 'EntryNotFound', `Entry not found: ${base}`);
        const dirs = [...dirsOf(repo.files.keys())].filter(under).sort().map((path) => ({ type: 'directory', oid: gitBlobSha1(Buffer.from(path)), size: 0, path }));
        const files = [...repo.files].filter(([p]) => under(p)).sort(([a], [b]) => a.localeCompare(b)).map(([p, f]) => treeEntry(p, f));
        return sendJson(res, 200, [...dirs, ...files]);
      }
      if (what === 'paths-info' && req.method === 'POST') {
        const paths: string[] = JSON.parse(bodyText || '{}').paths ?? [];
        return sendJson(res, 200, paths.filter((p) => repo.files.has(p)).map((p) => treeEntry(p, repo.files.get(p)!)));
      }
      return notFound(res, 'EntryNotFound', 'Not found');
    }

    if (segs[0] === 'cdn') {
      // Where the Hub redirects LFS downloads (a CDN in real life): no token needed.
      log.kind = 'cdn';
      const repo = repos.get(segs.slice(1, -1).join('/'));
      const path = repo && [...repo.files].find(([, f]) => f.sha256 === segs[segs.length - 1])?.[0];
      if (!repo || !path) return notFound(res, 'EntryNotFound', 'Entry not found');
      log.repo = repo.id;
      log.file = path;
      return sendBytes(req, res, repo, path, { etag: `"${repo.files.get(path)!.sha256}"` });
    }

    const split = splitRepo(segs, ['resolve']);
    if (split && split[1][0] === 'resolve') {
      const [id, [, rev, ...fileSegs]] = split;
      log.kind = 'resolve';
      const repo = access(req, res, id, rev);
      if (!repo) return;
      const path = fileSegs.join('/');
      log.repo = id;
      log.file = path;
      const f = repo.files.get(path);
      if (!f) return notFound(res, 'EntryNotFound', `Entry not found: ${path}`);
      const headers: Record<string, string> = { 'x-repo-commit': repo.commit, etag: `"${f.lfs ? f.sha256 : f.oid}"` };
      if (f.lfs) {
        res.writeHead(302, { ...headers, 'x-linked-etag': `"${f.sha256}"`, 'x-linked-size': String(f.data.length), location: `/cdn/${id}/${f.sha256}` });
        return res.end();
      }
      return sendBytes(req, res, repo, path, headers);
    }
    notFound(res, 'EntryNotFound', 'Not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    repos,
    requests,
    downloads: (of = {}) =>
      requests.filter(
        (r) =>
          r.kind !== 'api' && r.method === 'GET' && r.range !== 'bytes=0-0' && (of.repo === undefined || r.repo === of.repo) && (of.file === undefined || r.file === of.file),
      ),
    addRepo(spec) {
      const raw: Record<string, string | Buffer> = spec.dir ? readTree(spec.dir) : { ...spec.files };
      const files = new Map(Object.entries(raw).map(([p, d]) => [p, toFile(p, Buffer.from(d))] as const));
      const commit = createHash('sha1').update(spec.id).update([...files.values()].map((f) => f.sha256).join()).digest('hex');
      const repo: FakeRepo = {
        id: spec.id,
        commit,
        files,
        refs: new Set(['main', ...(spec.refs ?? [])]),
        gatedToken: spec.gatedToken,
        knobs: new Map(),
        etag: (p) => (files.get(p)!.lfs ? files.get(p)!.sha256 : files.get(p)!.oid),
      };
      repos.set(spec.id, repo);
      return repo;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---------------------------------------------------------------------------------------------
// A tiny model repo on disk
// ---------------------------------------------------------------------------------------------

/** A valid-looking safetensors file: one F32 tensor of `n` values (not a loadable model). */
export function fakeSafetensors(name: string, n: number, seed: number): Buffer {
  const header = Buffer.from(JSON.stringify({ [name]: { dtype: 'F32', shape: [n], data_offsets: [0, 4 * n] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const data = Buffer.alloc(4 * n);
  for (let i = 0; i < n; i++) data.writeFloatLE(Math.sin(seed * 1000 + i), 4 * i);
  return Buffer.concat([len, header, data]);
}

export interface TinyRepoOptions {
  /** Sharded with an index (default) or one model.safetensors. */
  sharded?: boolean;
  /** Leave the safetensors out (keeping pytorch_model.bin). */
  noSafetensors?: boolean;
  /** Floats per shard (4 bytes each); default 16384 (64 kB). */
  shardFloats?: number;
}

/**
 * Writes a small repo into `dir`: the JSON files Iris reads, safetensors weights, and files
 * Iris must not fetch (README.md, a bigger pytorch_model.bin, an unlisted shard, an ONNX export).
 */
export function writeTinyRepo(dir: string, opts: TinyRepoOptions = {}): string {
  const n = opts.shardFloats ?? 16384;
  const put = (p: string, d: string | Buffer) => {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), d);
  };
  const json = (o: unknown) => JSON.stringify(o, null, 2);
  put('config.json', json({ architectures: ['Qwen2VLForConditionalGeneration'], model_type: 'qwen2_vl', hidden_size: 8 }));
  put('generation_config.json', json({ eos_token_id: [2], temperature: 0.7 }));
  put('tokenizer.json', json({ version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } }));
  put('tokenizer_config.json', json({ eos_token: '</s>' }));
  put('preprocessor_config.json', json({ min_pixels: 3136, max_pixels: 12845056, patch_size: 14 }));
  put('chat_template.jinja', '{% for m in messages %}{{ m.content }}{% endfor %}');
  put('README.md', '# tiny\n'.repeat(2000));
  put('pytorch_model.bin', Buffer.alloc(300_000, 7));
  put('onnx/model.onnx', Buffer.alloc(50_000, 3));
  if (!opts.noSafetensors) {
    if (opts.sharded ?? true) {
      const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
      shards.forEach((s, i) => put(s, fakeSafetensors(`layer.${i}.weight`, n, i + 1)));
      put('model.safetensors.index.json', json({ metadata: { total_size: 8 * n }, weight_map: { 'layer.0.weight': shards[0], 'layer.1.weight': shards[1] } }));
      put('model-unused.safetensors', fakeSafetensors('unused', 1000, 9)); // in the repo, not in the index
    } else {
      put('model.safetensors', fakeSafetensors('layer.0.weight', n, 1));
    }
  }
  return dir;
}

/** Files of a tiny repo Iris downloads (sharded layout). */
export const TINY_WANTED = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'preprocessor_config.json',
  'chat_template.jinja',
  'model.safetensors.index.json',
  'model-00001-of-00002.safetensors',
  'model-00002-of-00002.safetensors',
].sort();

/**
 * An environment for resolveModelPath that reaches only `hub` and keeps everything (cache,
 * HF_HOME, HOME) under `root`, so no setting or token of the machine leaks into a test.
 */
export function hubEnv(hubUrl: string, root: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HOME: join(root, 'home'),
    HF_HOME: join(root, 'hf-home'),
    HF_HUB_CACHE: join(root, 'cache'),
    HF_ENDPOINT: hubUrl,
    HF_HUB_DOWNLOAD_TIMEOUT: '5',
    ...extra,
  };
}
