import { promises as fs } from 'node:fs';

/** `fn` with the snapshot store's disk lost (`store` moved aside), put back afterwards. */
export async function withoutStore<T>(store: string, fn: () => Promise<T>): Promise<T> {
  const gone = `${store}.gone`;
  await fs.rename(store, gone);
  try {
    return await fn();
  } finally {
    await fs.rm(store, { recursive: true, force: true });
    await fs.rename(gone, store);
  }
}
