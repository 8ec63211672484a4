import type { DbClient } from '../infrastructure/database/database.js';
import { ValidationError } from '../errors/index.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import { EventRepository, type EventRecord } from './event.repository.js';

/** Emitting events: checked against the emitter's manifest, then stored. */
export class EventService {
  /**
   * Stores an event emitted by addon code, in `db` (the emitter's transaction when it has one).
   * The name must be declared under `events.emits` (the sandbox checks that before calling), and
   * the data must match the schema declared for it.
   */
  async emitFromAddon(
    db: DbClient,
    emitter: { addonId: string; addonName: string; manifest: AddonManifest },
    event: { name: string; data: unknown; siteId: string; requestId?: string },
  ): Promise<EventRecord> {
    const declared = emitter.manifest.events.emits.find((e) => e.name === event.name);
    if (declared?.schema) {
      const result = validateWithDefaults(declared.schema, event.data, 'data');
      if (!result.ok) throw ValidationError.of(`data of event ${event.name}`, result.problems);
    }
    return new EventRepository(db).create({
      name: event.name,
      sourceAddonId: emitter.addonId,
      source: emitter.addonName,
      siteId: event.siteId,
      data: event.data ?? null,
      requestId: event.requestId ?? null,
    });
  }
}
