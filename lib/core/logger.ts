import { AsyncLocalStorage } from 'node:async_hooks';
import { format as formatText } from 'node:util';

// Our own line logger instead of winston (start-up, issue #28): winston and its ~90 modules were ≈ 50 ms of every
// `run`'s start, for what we use of it — one stream (stderr), a level, child metadata, one line per call. The lines
// are the ones winston wrote with our formats: JSON with sorted keys (as logform's safe-stable-stringify sorts them,
// a bigint as a string, a circular reference as "[Circular]"), `timestamp` in ISO 8601; on a terminal
// `HH:mm:ss level [job] message key=value …`. One difference: winston dropped a call's metadata when its message
// contained a printf token (`%s`, `%d` …); here it is kept.

/** npm's levels, as winston numbered them: a logger at `info` writes error, warn and info. */
const LEVELS = { error: 0, warn: 1, info: 2, http: 3, verbose: 4, debug: 5, silly: 6 } as const;
export type LogLevel = keyof typeof LEVELS;

type LogMethod = (message: string, meta?: object) => Logger;

export interface Logger {
  error: LogMethod;
  warn: LogMethod;
  info: LogMethod;
  http: LogMethod;
  verbose: LogMethod;
  debug: LogMethod;
  silly: LogMethod;
  log(level: string, message: string, meta?: object): Logger;
  /** The same logger with `meta` on every line (a call's own metadata wins). */
  child(meta: object): Logger;
  /** 'finish': after end(), once every line was handed to stderr. */
  on(event: 'finish', listener: () => void): Logger;
  end(): void;
}

type Info = Record<string, unknown>;

/** What the loggers of one createLogger() share: the threshold, the format and the end. */
interface Sink {
  threshold: number;
  format: (info: Info) => string;
  finished: (() => void)[];
}

class LineLogger implements Logger {
  constructor(
    private readonly sink: Sink,
    private readonly meta: object = {},
  ) {}

  log(level: string, message: string, meta?: object): Logger {
    const rank = (LEVELS as Record<string, number>)[level];
    if (rank === undefined || rank > this.sink.threshold) return this;
    const info: Info = { ...this.meta, ...meta, level, message };
    // As winston did: an Error's message, stack and cause are not enumerable, yet belong on the line.
    if (meta && 'message' in meta && meta.message) info.message = `${message} ${formatText('%s', meta.message)}`;
    if (meta && 'stack' in meta && meta.stack) info.stack = meta.stack;
    if (meta && 'cause' in meta && meta.cause) info.cause = meta.cause;
    process.stderr.write(this.sink.format(info) + '\n');
    return this;
  }

  error = (message: string, meta?: object) => this.log('error', message, meta);
  warn = (message: string, meta?: object) => this.log('warn', message, meta);
  info = (message: string, meta?: object) => this.log('info', message, meta);
  http = (message: string, meta?: object) => this.log('http', message, meta);
  verbose = (message: string, meta?: object) => this.log('verbose', message, meta);
  debug = (message: string, meta?: object) => this.log('debug', message, meta);
  silly = (message: string, meta?: object) => this.log('silly', message, meta);

  child(meta: object): Logger {
    return new LineLogger(this.sink, { ...this.meta, ...meta });
  }

  on(_event: 'finish', listener: () => void): Logger {
    this.sink.finished.push(listener);
    return this;
  }

  end(): void {
    const listeners = this.sink.finished.splice(0);
    process.stderr.write('', () => listeners.forEach((f) => f()));
  }
}

/** JSON with keys sorted at every depth (the order logform's safe-stable-stringify gave). */
function stableJson(value: unknown, seen: object[] = []): string | undefined {
  if (typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON === 'function')
    value = (value as { toJSON: () => unknown }).toJSON();
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return String(value);
    case 'bigint':
      return JSON.stringify(value.toString());
    case 'object':
      break;
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined; // left out, as JSON.stringify does
  }
  if (value === null) return 'null';
  if (seen.includes(value)) return '"[Circular]"';
  seen.push(value);
  let text: string;
  if (Array.isArray(value)) {
    text = '[' + value.map((v: unknown) => stableJson(v, seen) ?? 'null').join(',') + ']';
  } else {
    const parts: string[] = [];
    for (const key of Object.keys(value).sort()) {
      const v = stableJson((value as Info)[key], seen);
      if (v !== undefined) parts.push(JSON.stringify(key) + ':' + v);
    }
    text = '{' + parts.join(',') + '}';
  }
  seen.pop();
  return text;
}

const two = (n: number) => String(n).padStart(2, '0');

function humanLine({ level, message, job, ...rest }: Info): string {
  const now = new Date();
  const time = `${two(now.getHours())}:${two(now.getMinutes())}:${two(now.getSeconds())}`;
  const extra = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : formatText('%s', v)}`)
    .join(' ');
  return `${time} ${String(level).padEnd(5)} ${job ? `[${formatText('%s', job)}] ` : ''}${String(message)}${extra ? ' ' + extra : ''}`;
}

/**
 * One JSON object per line when stderr is not a terminal (journald, cron mail, log shippers);
 * short human lines on a terminal. Logs go to stderr: stdout carries the job's result.
 */
export function createLogger(options: { level?: string; json?: boolean } = {}): Logger {
  const json = options.json ?? !process.stderr.isTTY;
  const level = options.level ?? process.env.MFS_JOBS_LOG_LEVEL ?? 'info';
  // The config's level is checked by its schema; an unknown one from the environment logs as `info`.
  const threshold = (LEVELS as Record<string, number>)[level] ?? LEVELS.info;
  const format = json
    ? (info: Info) => stableJson({ ...info, timestamp: new Date().toISOString() })!
    : (info: Info) => humanLine(info);
  return new LineLogger({ threshold, format, finished: [] });
}

/** A logger that drops everything (unit tests of jobs). */
export function silentLogger(): Logger {
  return new LineLogger({ threshold: -1, format: () => '', finished: [] });
}

/** The running job's logger, for code far below the job (transport's skipped-name warnings). */
const jobLogger = new AsyncLocalStorage<Logger>();

/** Run `work` with `log` as the current job's logger (the daemon runs several jobs side by side). */
export function withJobLogger<T>(log: Logger, work: () => T): T {
  return jobLogger.run(log, work);
}

/** The current job's logger, if code runs inside one (withJobLogger). */
export function currentJobLogger(): Logger | undefined {
  return jobLogger.getStore();
}
