import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { ChainError } from '../core/errors.js';
import { ID_PATTERN } from './manifest.js';

/**
 * Pinned restore points (`mfs-jobs snapshot pin ID --note …`, Barman's `keep`, pgBackRest's annotation):
 * `<store>/pins.json`, root's own file in root's own store, written atomically under the backup lock.
 * A pinned snapshot is never removed by retention — the store's (backup) or a copy's — and its note shows
 * in `snapshot list` and `show`. A snapshot directory holds everything its restore needs, so pinning it
 * pins all it needs.
 */
export const PINS_FILE = 'pins.json';
/** A note is for humans: one short line. */
export const MAX_NOTE = 200;

export interface Pin {
  note: string;
  pinnedAt: string;
}

export type Pins = Record<string, Pin>;

export async function readPins(store: string): Promise<Pins> {
  const file = path.join(store, PINS_FILE);
  const text = await fs
    .readFile(file, 'utf8')
    .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ChainError(file, `${file}: not valid JSON (pins of restore points): fix or remove it`);
  }
  const pins = (parsed as { pins?: unknown })?.pins;
  if (!pins || typeof pins !== 'object') throw new ChainError(file, `${file}: no "pins" object`);
  const out: Pins = {};
  for (const [id, p] of Object.entries(pins as Record<string, Pin>)) {
    if (!ID_PATTERN.test(id) || typeof p?.note !== 'string' || typeof p.pinnedAt !== 'string')
      throw new ChainError(file, `${file}: entry ${JSON.stringify(id).slice(0, 40)} is not a pin`);
    out[id] = { note: p.note.slice(0, MAX_NOTE), pinnedAt: p.pinnedAt };
  }
  return out;
}

export async function writePins(store: string, pins: Pins): Promise<void> {
  await writeFileAtomic(path.join(store, PINS_FILE), JSON.stringify({ pins }, null, 2) + '\n');
}
