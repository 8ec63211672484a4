import DataLoader from 'dataloader';
import type { DbClient } from '../infrastructure/database/database.js';
import {
  AddonRepository,
  type AddonRecord,
  type AddonVersionSummary,
  type WidgetRecord,
  type ApiFunctionRecord,
  type AddonDependencyRecord,
} from './addon.repository.js';

/** Groups rows by a key, in the order DataLoader asked for the keys. */
export function groupBy<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): T[][] {
  const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return keys.map((k) => groups.get(k)!);
}

/** Picks one row per key, or null, in the order DataLoader asked for the keys. */
export function byKey<T>(keys: readonly string[], rows: T[], keyOf: (row: T) => string): (T | null)[] {
  const map = new Map(rows.map((r) => [keyOf(r), r]));
  return keys.map((k) => map.get(k) ?? null);
}

/** Per-request batch loaders for the registry; each batch is one SQL query. */
export function createAddonLoaders(db: DbClient) {
  const repository = new AddonRepository(db);
  return {
    addonById: new DataLoader<string, AddonRecord | null>(async (ids) =>
      byKey(ids, await repository.findByIds(ids), (a) => a.id),
    ),
    versionById: new DataLoader<string, AddonVersionSummary | null>(async (ids) =>
      byKey(ids, await repository.versionsByIds(ids), (v) => v.id),
    ),
    versionsByAddonId: new DataLoader<string, AddonVersionSummary[]>(async (ids) =>
      groupBy(ids, await repository.versionsByAddonIds(ids), (v) => v.addonId),
    ),
    widgetsByVersionId: new DataLoader<string, WidgetRecord[]>(async (ids) =>
      groupBy(ids, await repository.widgetsByVersionIds(ids), (w) => w.addonVersionId),
    ),
    functionsByVersionId: new DataLoader<string, ApiFunctionRecord[]>(async (ids) =>
      groupBy(ids, await repository.functionsByVersionIds(ids), (f) => f.addonVersionId),
    ),
    dependenciesByVersionId: new DataLoader<string, AddonDependencyRecord[]>(async (ids) =>
      groupBy(ids, await repository.dependenciesByVersionIds(ids), (d) => d.addonVersionId),
    ),
  };
}
