-- Written by hand: the Prisma schema language cannot declare a generated column or an index on an
-- expression, so neither is in schema.prisma (and `db:diff`, which diffs schema against schema,
-- never proposes to drop them).
--
-- `addons(search:)` is a case-insensitive substring match over name, displayName and description.
-- "searchText" holds the three lowercased and joined by U+001F, kept by PostgreSQL itself, and one
-- trigram index over it finds the matches with one index scan. The separator keeps a match inside
-- one column (AddonRepository.search). Lowercased once here, rechecking a match is a plain LIKE.
--
-- pg_trgm ships with the PostgreSQL contrib modules (the postgres:16 image, the Debian postgresql
-- package, the PGlite contrib) and is a trusted extension: the database owner may create it.
-- (No semicolon inside these comments: the script is split on every one before it runs.)
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- AlterTable
ALTER TABLE "Addon" ADD COLUMN "searchText" TEXT NOT NULL
  GENERATED ALWAYS AS (lower("name" || E'\x1f' || "displayName" || E'\x1f' || "description")) STORED;

-- CreateIndex
CREATE INDEX "Addon_searchText_trgm_idx" ON "Addon" USING GIN ("searchText" gin_trgm_ops);
