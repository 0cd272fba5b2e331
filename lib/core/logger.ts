import { AsyncLocalStorage } from 'node:async_hooks';
import { format as formatText } from 'node:util';
import winston from 'winston';

export type Logger = winston.Logger;

/**
 * One JSON object per line when stderr is not a terminal (journald, cron mail, log shippers);
 * short human lines on a terminal. Logs go to stderr: stdout carries the job's result.
 */
export function createLogger(options: { level?: string; json?: boolean } = {}): Logger {
  const json = options.json ?? !process.stderr.isTTY;
  const format = json
    ? winston.format.combine(winston.format.timestamp(), winston.format.json())
    : winston.format.combine(
        winston.format.timestamp({ format: 'HH:mm:ss' }),
        winston.format.printf(({ timestamp, level, message, job, ...rest }) => {
          const extra = Object.entries(rest)
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : formatText('%s', v)}`)
            .join(' ');
          return `${String(timestamp)} ${level.padEnd(5)} ${job ? `[${formatText('%s', job)}] ` : ''}${String(message)}${extra ? ' ' + extra : ''}`;
        }),
      );
  return winston.createLogger({
    level: options.level ?? process.env.MFS_JOBS_LOG_LEVEL ?? 'info',
    format,
    transports: [
      new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] }),
    ],
  });
}

/** A logger that drops everything (unit tests of jobs). */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
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
