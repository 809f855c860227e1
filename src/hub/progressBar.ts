import type { DownloadProgress } from './download.js';
import { formatBytes, formatSeconds } from './units.js';

/** Where progress goes: a terminal gets a live line, anything else (a log file, a pipe) plain lines. */
export type ProgressStream = Pick<NodeJS.WritableStream, 'write'> & { isTTY?: boolean };

/** Redraws of the live line are spaced so a fast download does not flood the terminal. */
const REDRAW_MS = 100;

interface FileState {
  t0: number;
  bytes0: number;
  lastDraw: number;
}

/**
 * An `onProgress` callback for resolveModelPath. On a TTY, each file gets one line that is
 * redrawn in place with bytes, speed and ETA, and left in place when the file is done; elsewhere
 * only finished files are logged, one line each with size and time, so logs stay readable.
 */
export function renderDownloadProgress(stream: ProgressStream = process.stderr, now: () => number = () => performance.now()): (e: DownloadProgress) => void {
  const files = new Map<string, FileState>();
  return (e) => {
    const t = now();
    let s = files.get(e.file);
    if (!s) {
      // Speed counts only what this run fetched, not the bytes a resumed download already had.
      s = { t0: t, bytes0: e.bytes, lastDraw: -Infinity };
      files.set(e.file, s);
    }
    const secs = (t - s.t0) / 1000;
    const speed = secs > 0 ? (e.bytes - s.bytes0) / secs : 0;
    if (e.done) files.delete(e.file);

    if (!stream.isTTY) {
      if (e.done) stream.write(`downloaded ${e.file}: ${formatBytes(e.total)} in ${formatSeconds(secs)}${speed > 0 ? ` (${formatBytes(speed)}/s)` : ''}\n`);
      return;
    }
    if (!e.done && t - s.lastDraw < REDRAW_MS) return;
    s.lastDraw = t;
    const pct = e.total > 0 ? Math.floor((100 * e.bytes) / e.total) : 100;
    const rate = speed > 0 ? `${formatBytes(speed)}/s` : '--/s';
    const tail = e.done ? `done in ${formatSeconds(secs)}` : `ETA ${speed > 0 ? formatSeconds((e.total - e.bytes) / speed) : '?'}`;
    stream.write(`\r\x1b[2K${e.file}  ${formatBytes(e.bytes)} / ${formatBytes(e.total)}  ${String(pct).padStart(3)}%  ${rate}  ${tail}${e.done ? '\n' : ''}`);
  };
}
