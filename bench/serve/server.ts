/** Starts `iris serve` as a child process on 127.0.0.1 and stops it again. */
import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from './util.js';

export interface ServerHandle {
  host: string;
  port: number;
  pid: number;
  logPath: string;
  /** Seconds from spawn to the "ready" line. */
  startSeconds: number;
  stop(): Promise<void>;
}

/** dist/src/cli/main.js, found from dist/bench/serve/server.js. */
function cliPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of [join('..', '..'), join('..', '..', 'dist')]) {
    const p = resolve(here, up, 'src', 'cli', 'main.js');
    if (existsSync(p)) return p;
  }
  throw new Error(`cannot find dist/src/cli/main.js from ${here}; run npm run build`);
}

export async function startServer(modelPath: string, extraArgs: string[], logPath: string, readyTimeoutS = 1800): Promise<ServerHandle> {
  const args = [cliPath(), 'serve', '--model-path', modelPath, '--host', '127.0.0.1', '--port', '0', ...extraArgs];
  log(`starting: node ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  log(`server log: ${logPath}`);
  const t0 = performance.now();
  const child: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  const out = createWriteStream(logPath);
  child.stderr!.pipe(out, { end: false });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitP = new Promise<void>((r) => child.once('exit', (code, signal) => ((exited = { code, signal }), r())));
  const ready = await new Promise<{ host: string; port: number }>((resolveReady, reject) => {
    let buf = '';
    let found = false;
    const timer = setTimeout(() => reject(new Error(`the server was not ready within ${readyTimeoutS} s (log: ${logPath})`)), readyTimeoutS * 1000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      out.write(d);
      if (found) return;
      buf += d;
      const m = /Iris is ready at http:\/\/(\[[^\]]+\]|[^:\s]+):(\d+)/.exec(buf);
      if (m) {
        found = true;
        clearTimeout(timer);
        resolveReady({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
      }
    });
    void exitP.then(() => {
      clearTimeout(timer);
      if (!found) {
        out.end();
        let tail = '';
        try {
          tail = readFileSync(logPath, 'utf8').split('\n').slice(-30).join('\n');
        } catch {
          // no log
        }
        reject(new Error(`the server exited (code ${exited?.code}, signal ${exited?.signal}) before it was ready:\n${tail}`));
      }
    });
  });
  const startSeconds = (performance.now() - t0) / 1000;
  log(`server ready at http://${ready.host}:${ready.port} after ${startSeconds.toFixed(1)} s (pid ${child.pid})`);
  const onExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  return {
    ...ready,
    pid: child.pid!,
    logPath,
    startSeconds,
    async stop() {
      process.off('exit', onExit);
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
        }, 10_000);
        await exitP;
        clearTimeout(t);
      }
      out.end();
    },
  };
}
