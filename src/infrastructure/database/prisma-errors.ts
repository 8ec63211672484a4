import { Prisma } from '../../generated/prisma/client.js';
import { ConflictError, NotFoundError, AppError } from '../../errors/index.js';

/**
 * Turns the Prisma errors a client can cause into catalogue errors, so nothing above the
 * repositories needs to know Prisma. Anything else is rethrown untouched (and masked later).
 */
export function translatePrismaError(error: unknown, entity: string, key = ''): never {
  if (error instanceof AppError) throw error;
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (error.code === 'P2002') {
      throw new ConflictError(`${entity} ${key ? `"${key}" ` : ''}already exists.`);
    }
    if (error.code === 'P2025') throw new NotFoundError(entity, key);
    if (error.code === 'P2003') {
      throw new ConflictError(`${entity} ${key ? `"${key}" ` : ''}is still referenced by other records.`);
    }
  }
  throw error;
}

/** Wraps a repository call so Prisma errors leave it translated. */
export async function translating<T>(entity: string, key: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    translatePrismaError(error, entity, key);
  }
}
