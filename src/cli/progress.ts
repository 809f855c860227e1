/** Load progress on a terminal: one updating line on stderr, nothing when piped. */
export function loadProgress(label: string): { step(what: string): void; done(extra?: string): void } {
  const tty = process.stderr.isTTY;
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(1);
  let spinner: NodeJS.Timeout | null = null;
  let current = 'reading config';
  const draw = () => process.stderr.write(`\r\x1b[2K${label}: ${current} (${secs()} s)`);
  if (tty) spinner = setInterval(draw, 250);
  return {
    step(what) {
      current = what;
      if (tty) draw();
    },
    done(extra = '') {
      if (spinner) clearInterval(spinner);
      if (tty) process.stderr.write(`\r\x1b[2K${label}: ready in ${secs()} s${extra}\n`);
    },
  };
}
