import { Command, InvalidArgumentError, Option } from 'commander';

/**
 * Flags users paste from SGLang launch lines. Log levels take SGLang's names as
 * well as pino's; flags that only make sense on a GPU or a cluster are accepted
 * with a one-line warning, so a copied command starts instead of failing on them.
 */

const LOG_LEVELS: Record<string, string> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  critical: 'fatal',
  fatal: 'fatal',
};

/** SGLang's (debug, info, warning, error, critical) or pino's level name -> pino's. */
export function pinoLevel(level: string): string {
  const l = LOG_LEVELS[level.toLowerCase()];
  if (!l) throw new InvalidArgumentError(`unknown log level ${level}; use debug, info, warning, error or critical`);
  return l;
}

/** SGLang flags with no meaning on a CPU engine of one process. `value`: the flag takes an argument. */
const IGNORED: Array<{ flag: string; value: boolean }> = [
  { flag: '--disable-cuda-graph', value: false },
  { flag: '--cuda-graph-max-bs', value: true },
  { flag: '--cuda-graph-bs', value: true },
  { flag: '--attention-backend', value: true },
  { flag: '--mm-attention-backend', value: true },
  { flag: '--prefill-attention-backend', value: true },
  { flag: '--decode-attention-backend', value: true },
  { flag: '--sampling-backend', value: true },
  { flag: '--enable-torch-compile', value: false },
  { flag: '--torch-compile-max-bs', value: true },
  { flag: '--disable-custom-all-reduce', value: false },
  { flag: '--enable-p2p-check', value: false },
  { flag: '--disable-overlap-schedule', value: false },
  { flag: '--enable-mixed-chunk', value: false },
  { flag: '--enable-multimodal', value: false },
  { flag: '--kv-cache-dtype', value: true },
  { flag: '--device', value: true },
  { flag: '--base-gpu-id', value: true },
  { flag: '--cpu-offload-gb', value: true },
  { flag: '--load-format', value: true },
  { flag: '--schedule-conservativeness', value: true },
  { flag: '--skip-server-warmup', value: false },
  { flag: '--watchdog-timeout', value: true },
  { flag: '--decode-log-interval', value: true },
  { flag: '--show-time-cost', value: false },
  { flag: '--log-requests', value: false },
];

/** camelCase option key commander uses for a flag. */
function key(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function onlyOne(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (n !== 1) throw new InvalidArgumentError(`Iris runs the model in one process on one machine; ${name} must be 1 (got ${v})`);
    return n;
  };
}

/**
 * Adds SGLang's flags to a command: those with a meaning here (`--tp-size`, `--dp-size`
 * only as 1; `--enable-metrics` and `--trust-remote-code`, whose behaviour is always on)
 * and the hidden ignored ones.
 */
export function addSglangFlags(cmd: Command): Command {
  cmd
    .addOption(new Option('--tp-size <n>', 'tensor parallelism: 1 (one CPU process)').argParser(onlyOne('--tp-size')))
    .addOption(new Option('--tp <n>').hideHelp().argParser(onlyOne('--tp')))
    .addOption(new Option('--dp-size <n>', 'data parallelism: 1 (run several servers behind a router instead)').argParser(onlyOne('--dp-size')))
    .addOption(new Option('--dp <n>').hideHelp().argParser(onlyOne('--dp')))
    .option('--enable-metrics', 'accepted: /metrics is always on')
    .option('--trust-remote-code', 'accepted: Iris implements the model families natively and runs no code from the checkpoint');
  for (const { flag, value } of IGNORED) cmd.addOption(new Option(value ? `${flag} <value>` : flag).hideHelp());
  cmd.addHelpText('after', `\nAccepted for SGLang compatibility and ignored (no meaning on a CPU engine):\n  ${IGNORED.map((i) => i.flag).join(', ')}`);
  return cmd;
}

/** One warning line per ignored SGLang flag that was given, and for a 16-bit --dtype. */
export function ignoredFlagWarnings(opts: Record<string, unknown>): string[] {
  const out = IGNORED.filter(({ flag }) => opts[key(flag)] !== undefined).map(({ flag }) => `iris: ignoring ${flag}: it has no meaning on a CPU engine`);
  if (['bfloat16', 'float16', 'half'].includes(String(opts.dtype))) {
    out.push(`iris: --dtype ${String(opts.dtype)}: Iris computes in float32 on the CPU; --quantization int8 or int4 makes the weights smaller`);
  }
  return out;
}
