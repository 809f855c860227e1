import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** Where the page's scripts, styles and icon are served from. */
export const PLAYGROUND_PREFIX = '/playground/';

/**
 * Nothing may load from another origin and no inline script may run, so model text that
 * slipped into the page as markup could neither execute nor phone home.
 */
export const PLAYGROUND_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The shipped `playground/` folder: dist/src/server -> package root. */
export function playgroundDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'playground');
}

/** The page and its assets answer without the API key: the page itself asks for it. */
export function isPlaygroundPath(path: string): boolean {
  return path === '/' || path.startsWith(PLAYGROUND_PREFIX);
}

/** Reads the servable files once; names come from the folder listing, never from a URL. */
function loadFiles(dir: string): Map<string, { body: Buffer; type: string }> {
  if (!existsSync(join(dir, 'index.html'))) {
    throw new Error(`the playground files are missing (${dir}); reinstall Iris or pass --disable-playground`);
  }
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type && !name.endsWith('.d.ts')) files.set(name, { body: readFileSync(join(dir, name)), type });
  }
  return files;
}

function send(reply: FastifyReply, file: { body: Buffer; type: string }): FastifyReply {
  return reply
    .header('content-type', file.type)
    .header('content-security-policy', PLAYGROUND_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
    .send(file.body);
}

/** GET / (the chat page) and GET /playground/<file>. */
export function registerPlayground(app: FastifyInstance, dir = playgroundDir()): void {
  const files = loadFiles(dir);
  const index = files.get('index.html')!;
  app.get('/', async (_req, reply) => send(reply, index));
  app.get<{ Params: { file: string } }>(`${PLAYGROUND_PREFIX}:file`, async (req, reply) => {
    const file = files.get(req.params.file);
    return file ? send(reply, file) : reply.callNotFound();
  });
}
