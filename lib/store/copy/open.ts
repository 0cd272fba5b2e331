import type { Config, CopyConfig } from '../../core/config.js';
import type { CopyRepository } from './repository.js';

/** The config key of a copy (for messages): `snapshotStore.copies.1`. */
export function copyKey(config: Config, copy: CopyConfig): string {
  return `snapshotStore.copies.${config.snapshotStore?.copies.indexOf(copy) ?? -1}`;
}

/** `area`: the top directory of what is kept there: `snapshots`, or the changelog archive's `archive`. */
export async function openCopy(
  config: Config,
  copy: CopyConfig,
  signal?: AbortSignal,
  area?: string,
): Promise<CopyRepository> {
  if (copy.type === 'sftp') return (await import('./sftp.js')).openSftpCopy(copy, copyKey(config, copy), signal, area);
  return (await import('./s3.js')).openS3Copy(copy, copyKey(config, copy), area);
}
