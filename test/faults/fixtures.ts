import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Lab } from '../lab/cluster.js';
import { LabMaster } from '../lab/moosefs.js';

/**
 * Lab pieces the fault tests share: a master with a metadata image big enough that a throttled
 * transfer of it takes seconds, and known_hosts entries for proxies in front of the lab's sshd.
 */

/** A master whose image holds `files` files (a few MB): a changelog replayed by mfsmaster -a, then a clean restart. */
export async function bigMaster(dir: string, files: number): Promise<LabMaster> {
  const master = await LabMaster.create(dir);
  const t = Math.floor(Date.now() / 1000);
  const lines = Array.from({ length: files }, (_, i) => `${i + 1}: ${t}|CREATE(1,file${i},1,438,18,0,0,0):${i + 2}`);
  await fs.writeFile(path.join(master.dataPath, 'changelog.0.mfs'), lines.join('\n') + '\n');
  await master.start({ autoRestore: true });
  await master.restart();
  return master;
}

/** known_hosts naming the lab sshd's host key at a proxy's port (the proxy is what mfs-jobs connects to). */
export async function knownHostsAt(lab: Lab, port: number, name: string): Promise<string> {
  const hostPub = (await fs.readFile(`${lab.sshd!.hostKey}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
  const file = path.join(lab.dir, `known_hosts.${name}`);
  await fs.writeFile(file, `[127.0.0.1]:${port} ${hostPub}\n`, { mode: 0o600 });
  return file;
}

/** A master entry of the lab config that reads `master`'s DATA_PATH, optionally through a proxy port. */
export function masterEntry(name: string, master: LabMaster, via?: { port: number; knownHosts: string; privateKey?: string }): Record<string, unknown> {
  return { name, host: '127.0.0.1', dataPath: master.dataPath, cliPort: master.ports.cl, ...(via ? { ssh: via } : {}) };
}
