import { writeFile, mkdir } from 'node:fs/promises';
import { createSchema, printSchemaSdl } from './graphql/schema.js';

/** `npm run schema:emit`: writes the SDL the code defines to schema/schema.graphql. */
async function main(): Promise<void> {
  const sdl = printSchemaSdl(await createSchema());
  await mkdir('schema', { recursive: true });
  await writeFile('schema/schema.graphql', sdl);
  console.log(`schema/schema.graphql written (${sdl.split('\n').length} lines)`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
