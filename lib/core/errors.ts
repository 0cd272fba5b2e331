/**
 * Errors are values with a name: each carries the file, host or key it concerns, so the CLI can
 * print one line an operator can act on at 3 a.m.
 */
export class MfsJobsError extends Error {
  /** What the error is about: a config key, a host, a file path. */
  readonly subject: string;
  constructor(subject: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.subject = subject;
  }
}

/** A config file that is missing, unreadable or invalid; `subject` is the key (or the file). */
export class ConfigError extends MfsJobsError {}
/** An SFTP/SSH transfer that failed; `subject` is the host. */
export class TransferError extends MfsJobsError {}
/** A metadata image or changelog that cannot be used; `subject` is the file. */
export class ChainError extends MfsJobsError {}
/**
 * A path root will not use: not a directory of ours, not a plain file, in a directory others can write
 * into, or a name that cannot be one; `subject` is the path (or the name).
 */
export class UntrustedPathError extends MfsJobsError {}
/** Another run of the same job holds the lock; `subject` is the lock file. */
export class LockBusyError extends MfsJobsError {}
/** An mfsmaster/mfscli process that failed; `subject` is the command or DATA_PATH. */
export class ProcessError extends MfsJobsError {}
/** The snapshot store cannot take a snapshot (its filesystem is full); `subject` is the store. */
export class StoreError extends MfsJobsError {}
/** A bad command-line request (unknown job, bad argument); `subject` is the argument. */
export class UsageError extends MfsJobsError {}

/**
 * One line for humans: "jobs.backup.schedule: expected a cron expression". The message names its subject;
 * the class is for code (instanceof), not for the operator reading the line.
 */
export function describeError(err: unknown): string {
  if (err instanceof MfsJobsError) return err.message;
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
