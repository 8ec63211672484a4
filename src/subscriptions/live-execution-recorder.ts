import { randomUUID } from 'node:crypto';
import type { Database } from '../infrastructure/database/database.js';
import { ExecutionRecorder, type ExecutionRecorderOptions } from '../executions/execution-recorder.js';
import type { NewExecution } from '../executions/execution.repository.js';
import { LiveTopic, type LivePubSub } from './pub-sub.js';

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

  override record(execution: NewExecution): string {
    const withId = execution.id === undefined ? { ...execution, id: randomUUID() } : execution;
    // Published as is: every pub/sub delivers JSON, where the Date arrives as the ISO string of
    // LiveExecution. The recorder keeps the same object, unchanged, until it is stored.
    this.live.publish(LiveTopic.Executions, withId).catch(() => undefined);
    return super.record(withId);
  }
}
