import { createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
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
    if (fields[0] === '@revoked' || fields[0] === '@cert-authority') marker = fields.shift() as KnownHostEntry['marker'];
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
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$', 'i');
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
export function checkHostKey(entries: KnownHostEntry[], host: string, port: number, key: Buffer, file: string): HostKeyVerdict {
  const name = hostKeyName(host, port);
  const b64 = key.toString('base64');
  const forHost = entries.filter((e) => e.marker !== '@cert-authority' && entryMatches(e, name));
  if (forHost.some((e) => e.marker === '@revoked' && e.key === b64)) {
    return { ok: false, reason: 'revoked', message: `host key of ${name} is marked @revoked in ${file}` };
  }
  const known = forHost.filter((e) => !e.marker);
  if (known.some((e) => e.key === b64)) return { ok: true };
  if (known.length === 0) return { ok: false, reason: 'unknown', message: `${name} is not in ${file} (add its host key: ssh-keyscan -p ${port} ${host} >> ${file}, after checking the fingerprint)` };
  return { ok: false, reason: 'mismatch', message: `host key of ${name} does not match ${file} (possible man-in-the-middle, or the host was reinstalled)` };
}

export async function loadKnownHosts(file: string, key: string): Promise<KnownHostEntry[]> {
  try {
    return parseKnownHosts(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(key, `cannot read known_hosts file ${file} (${key}): ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
