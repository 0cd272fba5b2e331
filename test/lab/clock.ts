import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { LabMaster } from './moosefs.js';
import { waitFor } from './proc.js';

/** libfaketime from Debian's `faketime` package (apt-get install faketime). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/**
 * A wall clock for one mfsmaster that the test moves forward, so MooseFS 3.0.117 does its hourly
 * work (metadata dump, `changelog.N.mfs` rotation, the rotate broadcast that makes metaloggers
 * rotate `changelog_ml.N.mfs`) in seconds instead of hours. Measured here: restarts, `-a` starts,
 * `mfsmaster restore` and metalogger reconnects never rotate changelogs; only the timer at the full
 * hour does (`main_time_register(3600,0,meta_dostoreall)`). The monotonic clock stays real, so
 * timeouts between master, metalogger and mount behave.
 */
export class FakeClock {
  private offsetSeconds = 0;

  private constructor(readonly file: string) {}

  static async create(dir: string): Promise<FakeClock> {
    if (!existsSync(LIBFAKETIME))
      throw new Error(
        `${LIBFAKETIME} is missing: the rotation tests need Debian's faketime package (apt-get install faketime)`,
      );
    const clock = new FakeClock(path.join(dir, 'faketimerc'));
    await clock.write();
    return clock;
  }

  /** Prefix for LabMaster.start({ wrap }): the master reads its time from `file`, re-read on every call. */
  get wrap(): string[] {
    return [
      'env',
      `LD_PRELOAD=${LIBFAKETIME}`,
      `FAKETIME_TIMESTAMP_FILE=${this.file}`,
      'FAKETIME_NO_CACHE=1',
      'FAKETIME_DONT_FAKE_MONOTONIC=1',
    ];
  }

  /** The master's idea of now (ms). */
  now(): number {
    return Date.now() + this.offsetSeconds * 1000;
  }

  private async write(): Promise<void> {
    await fs.writeFile(this.file, `+${this.offsetSeconds}s\n`);
  }

  /**
   * Jump to two seconds before the next full hour and wait until the master has rotated its
   * changelogs and finished the hourly metadata dump.
   */
  async nextHour(master: LabMaster): Promise<void> {
    const logFile = path.join(master.dir, 'mfsmaster.log');
    const dumps = async () =>
      ((await fs.readFile(logFile, 'utf8').catch(() => '')).match(/store process has finished/g) ?? []).length;
    const before = await dumps();
    const seconds = Math.floor(this.now() / 1000);
    this.offsetSeconds += 3600 - (seconds % 3600) - 2;
    await this.write();
    await waitFor('the master to rotate its changelogs at the full hour', async () => (await dumps()) > before, 20_000);
  }
}
