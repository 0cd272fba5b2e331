import { accessSync, constants as fsc } from 'node:fs';
import path from 'node:path';
import { generationOfSoftware, type Generation } from '../../lib/moosefs/generations/index.js';

/**
 * The MooseFS builds a lab can run: Debian's 3.0.117 from /usr, the others built from
 * ../shared/moosefs-src by scripts/build-moosefs.sh into $MFS_JOBS_MOOSEFS_PREFIX/VERSION
 * (default /opt/mfs-jobs/moosefs). A build that is missing fails the test that needs it, with one line
 * naming the binary and the command that builds it: never a skip.
 */
export type LabVersion = '1.5.12' | '1.6.4' | '1.6.27' | '3.0.117' | '4.59.2';

export const BUILT_VERSIONS: readonly LabVersion[] = ['1.5.12', '1.6.4', '1.6.27', '4.59.2'];

export interface LabGeneration {
  version: LabVersion;
  generation: Generation;
  /** Installation prefix; undefined for Debian's packages. */
  prefix?: string;
  mfsmaster: string;
  mfsmetarestore: string;
  /** Undefined where the generation has none (before 1.6.5). */
  mfsmetalogger?: string;
  /** Undefined for 1.5.12: its release tree's mfsmount does not build, and its master refuses 1.6.4's. */
  mfsmount?: string;
  mfschunkserver: string;
}

export function prefixRoot(): string {
  return process.env.MFS_JOBS_MOOSEFS_PREFIX ?? '/opt/mfs-jobs/moosefs';
}

export function labGeneration(version: LabVersion = '3.0.117'): LabGeneration {
  const generation = generationOfSoftware(version)!;
  if (version === '3.0.117') {
    return {
      version,
      generation,
      mfsmaster: 'mfsmaster',
      mfsmetarestore: 'mfsmetarestore',
      mfsmetalogger: 'mfsmetalogger',
      mfsmount: 'mfsmount',
      mfschunkserver: 'mfschunkserver',
    };
  }
  const prefix = path.join(prefixRoot(), version);
  const at = (dir: string, name: string, owner = prefix) => path.join(owner, dir, name);
  const lab: LabGeneration = {
    version,
    generation,
    prefix,
    mfsmaster: at('sbin', 'mfsmaster'),
    mfsmetarestore: at('sbin', 'mfsmetarestore'),
    mfsmetalogger: generation.hasMetalogger ? at('sbin', 'mfsmetalogger') : undefined,
    mfsmount: version === '1.5.12' ? undefined : at('bin', 'mfsmount'),
    mfschunkserver: at('sbin', 'mfschunkserver'),
  };
  for (const bin of [
    lab.mfsmaster,
    lab.mfsmetarestore,
    ...(lab.mfsmount ? [lab.mfsmount] : []),
    ...(lab.mfsmetalogger ? [lab.mfsmetalogger] : []),
  ]) {
    try {
      accessSync(bin, fsc.X_OK);
    } catch {
      throw new Error(`MooseFS ${version} is not built: ${bin} is missing (run scripts/build-moosefs.sh ${version})`);
    }
  }
  return lab;
}

/** The mfs-jobs config keys that name this generation's binaries (none for Debian's). */
export function generationConfig(lab: LabGeneration): Record<string, unknown> {
  return lab.prefix ? { moosefs: { generation: 'auto', prefixes: { [lab.generation.name]: lab.prefix } } } : {};
}
