import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient, Prisma } from '../../generated/prisma/client.js';
import { createScanGate, type ScanGate, type ScanGateOptions } from './scan-gate.js';
import { ScanTimeoutError } from '../../errors/index.js';

/** The Prisma client, or the client of an open interactive transaction. */
export type DbClient = PrismaClient | Prisma.TransactionClient;

/** A connection to PostgreSQL shared by the repositories of one server process. */
export interface Database {
  readonly prisma: PrismaClient;
  readonly pool: pg.Pool;
  /** Runs `work` in one transaction; everything it writes is rolled back if it throws. */
  transaction<T>(work: (tx: Prisma.TransactionClient) => Promise<T>): Promise<T>;
  /** Number of SQL statements sent so far (tests use it to prove batching). */
  queryCount(): number;
  /** Admission for reads whose cost grows with a tenant's data (its figures: `stats()`). */
  readonly scans: ScanGate;
  /**
   * Runs a read whose cost grows with a tenant's data once `scans` admits `caller`; a statement of
   * it cancelled at the statement timeout becomes a ScanTimeoutError.
   */
  scan<T>(caller: string, work: (db: DbClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  connectionString: string;
  /** Pool size; the embedded PostgreSQL accepts one connection only. */
  max: number;
  /** Scans at once per caller (default 2) and in all (default half the pool, rounded up). */
  scans?: Partial<ScanGateOptions>;
  /**
   * PostgreSQL's `statement_timeout` for every connection of the pool, in ms (default 30,000, the
   * longest a transaction may take too; 0: none).
   */
  statementTimeoutMs?: number;
}

/** Opens a pool and a Prisma client over it (driver adapter, no engine binary). */
export function createDatabase(options: DatabaseOptions): Database {
  const statementTimeoutMs = Math.max(0, Math.floor(options.statementTimeoutMs ?? 30_000));
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    // A backstop for whatever a tenant can make PostgreSQL run: no request holds a connection longer.
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    idleTimeoutMillis: 30_000,
    // Without it a query waits forever for a connection to a database that went away.
    connectionTimeoutMillis: 5_000,
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query reconnects.
  pool.on('error', () => undefined);

  let queries = 0;
  // pool.query checks out a client too, so counting at the client sees every statement once.
  pool.on('connect', (client) => {
    // A checked-out client whose connection drops between two queries (a transaction's steps)
    // emits 'error' too, and the pool listens only to idle clients: without this the process
    // would crash. The failure still reaches the caller through its next query.
    client.on('error', () => undefined);
    const clientQuery = client.query.bind(client);
    client.query = ((...args: Parameters<typeof clientQuery>) => {
      queries += 1;
      return clientQuery(...args);
    }) as typeof client.query;
  });

  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  const scans = createScanGate({
    perCaller: options.scans?.perCaller ?? 2,
    total: options.scans?.total ?? Math.ceil(options.max / 2),
  });
  const scanWithin = async <T>(work: (db: DbClient) => Promise<T>): Promise<T> => {
    try {
      return await work(prisma);
    } catch (error) {
      if (statementTimeoutMs > 0 && isStatementTimeout(error)) throw new ScanTimeoutError(statementTimeoutMs);
      throw error;
    }
  };
  return {
    prisma,
    pool,
    transaction: (work) => prisma.$transaction(work, { maxWait: 10_000, timeout: 30_000 }),
    queryCount: () => queries,
    scans,
    scan: (caller, work) => scans.run(caller, () => scanWithin(work)),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/** PostgreSQL cancelled a statement at its `statement_timeout` (SQLSTATE 57014), as Prisma reports it. */
function isStatementTimeout(error: unknown): boolean {
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return false;
  const cause = (error.meta?.driverAdapterError as { cause?: { originalCode?: unknown } } | undefined)?.cause;
  return cause?.originalCode === '57014';
}
