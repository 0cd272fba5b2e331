import type { Retention } from '../../core/config.js';
import { planStoreRetention, type RetainedSnapshot, type StoreRetentionPlan } from '../retention.js';

/**
 * What one backup run does to one copy, decided from listings alone (pure): the copy's retention
 * runs over everything the copy has plus everything the store could give it, so a snapshot the
 * copy would delete at once is never sent, and a copy keeps longer than the store if told to.
 */
export interface CopyPlan {
  /** Local snapshots to send (newest first: after an outage the newest restore point lands first). */
  push: string[];
  /** Complete remote snapshots retention removes (manifest first). */
  remove: string[];
  /** Incomplete remote snapshots nothing will complete (no local snapshot of that id to send, or retention drops it). */
  removeIncomplete: string[];
  retention: StoreRetentionPlan;
}

export function planCopy(input: {
  local: readonly RetainedSnapshot[];
  complete: readonly RetainedSnapshot[];
  incomplete: readonly string[];
  retention: Retention;
  zone: string;
  /** Pinned in the store (snapshot pin): kept on the copy too. */
  pinned?: ReadonlySet<string>;
}): CopyPlan {
  const byId = new Map<string, RetainedSnapshot>();
  for (const s of [...input.complete, ...input.local]) if (!byId.has(s.id)) byId.set(s.id, s);
  const all = [...byId.values()];
  const sources = [...new Set(all.map((s) => s.manifest.source.name))].sort();
  const retention = planStoreRetention(all, sources, input.retention, input.zone, input.pinned);
  const dropped = new Set(retention.remove);
  const completeIds = new Set(input.complete.map((s) => s.id));
  const push = input.local
    .filter((s) => !completeIds.has(s.id) && !dropped.has(s.id))
    .map((s) => s.id)
    .sort()
    .reverse();
  const remove = input.complete.filter((s) => dropped.has(s.id)).map((s) => s.id);
  const pushing = new Set(push);
  const removeIncomplete = input.incomplete.filter((id) => !pushing.has(id));
  return { push, remove, removeIncomplete, retention };
}
