import { createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { appendLineDurable } from '../core/atomic.js';
import { ConfigError } from '../core/errors.js';

/** One usable line of an OpenSSH known_hosts file. */
interface KnownHostEntry {
  marker?: '@revoked' | '@cert-authority';
  patterns: string[];
  keyType: string;
  key: string;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'];
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority')
      marker = fields.shift() as KnownHostEntry['marker'];
    const [hosts, keyType, key] = fields;
    if (!hosts || !keyType || !key) continue;
    entries.push({ marker, patterns: hosts.split(','), keyType, key });
  }
  return entries;
}

/** The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise. */
export function hostKeyName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    '^' +
      pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
    'i',
  );
  return re.test(name);
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  return globMatch(pattern, name);
}

function entryMatches(entry: KnownHostEntry, name: string): boolean {
  let matched = false;
  for (const p of entry.patterns) {
    if (p.startsWith('!')) {
      if (patternMatches(p.slice(1), name)) return false;
    } else if (patternMatches(p, name)) matched = true;
  }
  return matched;
}

export type HostKeyVerdict = { ok: true } | { ok: false; reason: 'unknown' | 'mismatch' | 'revoked'; message: string };

/** Check a server's host key (the raw SSH blob) against known_hosts entries for `host:port`. */
export function checkHostKey(
  entries: KnownHostEntry[],
  host: string,
  port: number,
  key: Buffer,
  file: string,
): HostKeyVerdict {
  const name = hostKeyName(host, port);
  const b64 = key.toString('base64');
  const forHost = entries.filter((e) => e.marker !== '@cert-authority' && entryMatches(e, name));
  if (forHost.some((e) => e.marker === '@revoked' && e.key === b64)) {
    return { ok: false, reason: 'revoked', message: `host key of ${name} is marked @revoked in ${file}` };
  }
  const known = forHost.filter((e) => !e.marker);
  if (known.some((e) => e.key === b64)) return { ok: true };
  if (known.length === 0)
    return {
      ok: false,
      reason: 'unknown',
      message: `${name} is not in ${file} (add its host key: ssh-keyscan -p ${port} ${host} >> ${file}, after checking the fingerprint)`,
    };
  return {
    ok: false,
    reason: 'mismatch',
    message: `host key of ${name} does not match ${file} (possible man-in-the-middle, or the host was reinstalled)`,
  };
}

/** `missingIsEmpty`: with accept-new, a known_hosts not there yet is an empty one (the first pin creates it). */
export async function loadKnownHosts(
  file: string,
  key: string,
  options: { missingIsEmpty?: boolean } = {},
): Promise<KnownHostEntry[]> {
  try {
    return parseKnownHosts(await fs.readFile(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && options.missingIsEmpty) return [];
    throw new ConfigError(key, `cannot read known_hosts file ${file} (${key}): ${code ?? String(err)}`);
  }
}

/** The key type a raw SSH public key blob starts with (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …). */
export function keyTypeOf(key: Buffer): string {
  const length = key.length >= 4 ? key.readUInt32BE(0) : 0;
  // Caught by acceptNewHostKey, whose refusal names the host and the known_hosts file.
  if (length === 0 || length > 64 || 4 + length > key.length) throw new Error('malformed SSH host key blob');
  return key.subarray(4, 4 + length).toString('latin1');
}

export type HostKeyPin =
  { ok: true; pinned: boolean } | { ok: false; reason: 'mismatch' | 'revoked' | 'unknown'; message: string };

/**
 * OpenSSH's StrictHostKeyChecking=accept-new for a host `checkHostKey` called unknown: read the file
 * again (another run may have pinned it meanwhile) and, if the host is still unknown, append its key,
 * so every later connection is held to it.
 */
export async function acceptNewHostKey(
  file: string,
  configKey: string,
  host: string,
  port: number,
  key: Buffer,
): Promise<HostKeyPin> {
  const fresh = checkHostKey(await loadKnownHosts(file, configKey, { missingIsEmpty: true }), host, port, key, file);
  if (fresh.ok) return { ok: true, pinned: false };
  if (fresh.reason !== 'unknown') return fresh;
  try {
    await appendLineDurable(file, `${hostKeyName(host, port)} ${keyTypeOf(key)} ${key.toString('base64')}`);
  } catch (err) {
    return {
      ok: false,
      reason: 'unknown',
      message: `${hostKeyName(host, port)} is not in ${file} and its key could not be added there (${configKey}, acceptUnknownHostKeys): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    };
  }
  return { ok: true, pinned: true };
}
