import { promises as fs } from 'node:fs';

/** `fn` with the snapshot store's disk lost (`store` moved aside), put back afterwards. */
export async function withoutStore(store: string, fn: () => Promise<void>): Promise<void> {
  const gone = `${store}.gone`;
  await fs.rename(store, gone);
  try {
    await fn();
  } finally {
    await fs.rm(store, { recursive: true, force: true });
    await fs.rename(gone, store);
  }
}
