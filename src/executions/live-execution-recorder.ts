import type { Database } from '../infrastructure/database/database.js';
import { ExecutionRecorder, type ExecutionRecorderOptions } from './execution-recorder.js';
import type { NewExecution } from './execution.repository.js';
import { RawJson } from '../shared/raw-json.js';
import { LiveTopic, type LivePubSub } from '../infrastructure/pub-sub/pub-sub.js';

/** An execution record as the live feed carries it (JSON: the date as a string). */
export type LiveExecution = Omit<NewExecution, 'createdAt'> & { id: string; createdAt: string };

/**
 * The execution recorder that also tells live subscribers (Subscription.executions) about each run.
 * Published when buffered, not when stored: dashboards see runs at once, and a record lost with
 * a crash before its batch is written was never promised to anyone.
 */
export class LiveExecutionRecorder extends ExecutionRecorder {
  constructor(
    database: Database,
    options: ExecutionRecorderOptions,
    private readonly live: LivePubSub,
  ) {
    super(database, options);
  }

  /** Published as the recorder serialised it: dates arrive as the ISO strings of LiveExecution. */
  protected override recorded(json: string): void {
    this.live.publish(LiveTopic.Executions, new RawJson(json)).catch(() => undefined);
  }
}
