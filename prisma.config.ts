import { defineConfig } from 'prisma/config';

// Prisma 7 reads the connection string from here rather than from schema.prisma.
// The server itself connects through @prisma/adapter-pg (src/infrastructure/database).
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  datasource: { url: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/themepress' },
});
