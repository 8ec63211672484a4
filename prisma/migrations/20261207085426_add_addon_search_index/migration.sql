-- Written by hand: the Prisma schema language cannot declare an expression index, so this index is
-- not in schema.prisma (and `db:diff` never proposes to drop it).
--
-- `addons(search:)` is a case-insensitive substring match over name, displayName and description.
-- One trigram index over the three joined by U+001F serves it with one index scan. The separator
-- keeps a match inside one column (AddonRepository.search spells the same expression).
--
-- pg_trgm ships with the PostgreSQL contrib modules (the postgres:16 image, the Debian postgresql
-- package, the PGlite contrib) and is a trusted extension: the database owner may create it.
-- (No semicolon inside these comments: the script is split on every one before it runs.)
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- CreateIndex
CREATE INDEX "Addon_search_trgm_idx" ON "Addon"
  USING GIN (("name" || E'\x1f' || "displayName" || E'\x1f' || "description") gin_trgm_ops);
