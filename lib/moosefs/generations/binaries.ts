import path from 'node:path';
import type { Config } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { execCapture } from '../../core/exec.js';
import { generationNamed, generationOfSoftware, generationsReading, type Generation } from './index.js';

/** The programs of one MooseFS generation, as this machine has them. */
export interface Binaries {
  generation: Generation;
  mfsmaster: string;
  mfsmetarestore: string;
  mfscli: string;
  /** Which key named them (for messages): `moosefs.prefixes."1.6"`, or `standby.mfsmasterBin`. */
  key: string;
}

/** A generation's binaries: its `moosefs.prefixes` entry, else the MooseFS installed here (standby.mfsmasterBin, mfscliBin). */
export function binariesFor(config: Config, generation: Generation, mfsmasterDefault?: string): Binaries {
  const prefix = config.moosefs.prefixes[generation.name];
  if (prefix) {
    return {
      generation,
      mfsmaster: path.join(prefix, 'sbin', 'mfsmaster'),
      mfsmetarestore: path.join(prefix, 'sbin', 'mfsmetarestore'),
      mfscli: path.join(prefix, 'bin', 'mfscli'),
      key: `moosefs.prefixes."${generation.name}"`,
    };
  }
  const mfsmaster = mfsmasterDefault ?? config.standby?.mfsmasterBin ?? 'mfsmaster';
  const dir = path.dirname(mfsmaster);
  return {
    generation,
    mfsmaster,
    mfsmetarestore: dir === '.' ? 'mfsmetarestore' : path.join(dir, 'mfsmetarestore'),
    mfscli: config.mfscliBin,
    key: 'standby.mfsmasterBin',
  };
}

const probed = new Map<string, Promise<{ version: string; generation: Generation } | undefined>>();

/**
 * Which generation an mfsmaster binary is, from its own word: `-v` prints "version: 1.6.4" (1.6) or
 * "version: 3.0.117-1 ; build: …" (3.0, 4.x); 1.5 knows no -v and prints its `[-f] [-s]` usage.
 */
export function binaryGeneration(mfsmaster: string): Promise<{ version: string; generation: Generation } | undefined> {
  let answer = probed.get(mfsmaster);
  if (!answer) {
    answer = execCapture(mfsmaster, ['-v'], { timeoutMs: 10_000 }).then(
      (res) => {
        const out = res.stdout + res.stderr;
        const m = /version:\s*(\d+\.\d+\.\d+)/.exec(out);
        if (m) {
          const generation = generationOfSoftware(m[1]!);
          return generation ? { version: m[1]!, generation } : undefined;
        }
        return /usage: \S+ \[-f\] \[-s\] \[-c cfgfile\]/.test(out)
          ? { version: '1.5', generation: generationNamed('1.5') }
          : undefined;
      },
      () => undefined,
    );
    probed.set(mfsmaster, answer);
  }
  return answer;
}

/**
 * Start the `-v` probe that restoringBinaries asks on `auto` for the installed mfsmaster, ahead of time: a
 * promotion runs it while it fences and collects, not between placing the files and `mfsmaster -a`.
 */
export function probeAhead(config: Config, mfsmasterDefault?: string): void {
  if (config.moosefs.generation !== 'auto') return;
  void binaryGeneration(mfsmasterDefault ?? config.standby?.mfsmasterBin ?? 'mfsmaster');
}

/**
 * The binaries that restore an image with this magic (`where` names it in messages; an unreadable header,
 * `magic` undefined, counts as the newest format: see generationsReading). A pinned
 * `moosefs.generation` must write that magic; on `auto`, a generation writing it with a configured prefix
 * is taken, else the installed mfsmaster, which must itself be of such a generation: a 1.6 image is not
 * handed to a 3.0 mfsmaster, nor a 3.0/4.x image to 1.6 binaries.
 */
export async function restoringBinaries(
  config: Config,
  imageMagic: string | undefined,
  where: string,
  mfsmasterDefault?: string,
): Promise<Binaries> {
  const writers = generationsReading(imageMagic);
  const magic = imageMagic ?? writers[0]?.imageMagic;
  if (writers.length === 0)
    throw new ConfigError(where, `${where}: no MooseFS generation writes images with header "${magic}"`);
  const writtenBy = writers.map((g) => g.label).join(' or ');
  const pinned = config.moosefs.generation;
  if (pinned !== 'auto') {
    const generation = generationNamed(pinned);
    if (!writers.includes(generation)) {
      throw new ConfigError(
        'moosefs.generation',
        `${where} is a "${magic}" image (${writtenBy}), but moosefs.generation is ${pinned} (${generation.label}, "${generation.imageMagic}" images): refusing to restore it with those binaries`,
      );
    }
    return binariesFor(config, generation, mfsmasterDefault);
  }
  const prefixed = writers.find((g) => config.moosefs.prefixes[g.name] !== undefined);
  if (prefixed) return binariesFor(config, prefixed, mfsmasterDefault);
  const installed = binariesFor(config, writers[0]!, mfsmasterDefault);
  const found = await binaryGeneration(installed.mfsmaster);
  if (!found)
    throw new ConfigError(
      installed.key,
      `${where}: cannot tell which MooseFS ${installed.mfsmaster} is (its -v answer is not known); set moosefs.generation`,
    );
  if (!writers.includes(found.generation)) {
    const want = writers.map((g) => `"${g.name}"`).join(' or ');
    throw new ConfigError(
      `moosefs.prefixes`,
      `${where} is a "${magic}" image (${writtenBy}), but ${installed.mfsmaster} is MooseFS ${found.version} ("${found.generation.imageMagic}" images) and cannot restore it: set moosefs.prefixes.${want} to that generation's installation`,
    );
  }
  return { ...installed, generation: found.generation };
}

/** mfsmetarestore's argv (before 1.7): rebuild `output` from `image` and the changelogs, oldest first. */
export function metarestoreArgs(image: string, output: string, changelogs: readonly string[]): string[] {
  return ['-m', image, '-o', output, ...changelogs];
}

/**
 * The commands that restore a DATA_PATH and start its master the way `generation` does, as an operator
 * types them (restore shows them; lib/moosefs/roll-forward.ts runs the same steps): `mfsmaster -a`, or
 * mfsmetarestore into DATA_PATH/metadata.mfs followed by a plain start.
 */
export function restoreCommands(
  generation: Generation,
  programs: Partial<Pick<Binaries, 'mfsmaster' | 'mfsmetarestore'>> | undefined,
  configFile: string,
  files: { dataPath: string; image: string; changelogs: readonly string[] },
  way: Generation['restore'] = generation.restore,
): string[][] {
  const mfsmaster = programs?.mfsmaster ?? 'mfsmaster';
  const autoRestore = way === 'mfsmaster-a';
  const start = [mfsmaster, ...generation.startArgs(configFile, { autoRestore, foreground: false })];
  if (autoRestore) return [start];
  const at = (name: string) => path.join(files.dataPath, name);
  const restore = metarestoreArgs(at(files.image), at('metadata.mfs'), files.changelogs.map(at));
  return [[programs?.mfsmetarestore ?? 'mfsmetarestore', ...restore], start];
}
