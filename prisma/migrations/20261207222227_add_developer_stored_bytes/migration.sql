-- AlterTable
ALTER TABLE "Developer" ADD COLUMN     "storedBytes" BIGINT NOT NULL DEFAULT 0;

-- Written by hand: what the versions of each developer's addons take already, counted about as
-- AddonService counts a publish (UTF-8 bytes of the source and of the manifest JSON, plus the
-- WebAssembly module, the manifest as PostgreSQL prints it, a few bytes longer).
UPDATE "Developer" d
   SET "storedBytes" = s.bytes
  FROM (SELECT a."ownerId" AS id,
               sum(octet_length(v.source) + coalesce(octet_length(v.wasm), 0) + octet_length(v.manifest::text)) AS bytes
          FROM "AddonVersion" v JOIN "Addon" a ON a.id = v."addonId"
         WHERE a."ownerId" IS NOT NULL
         GROUP BY a."ownerId") s
 WHERE d.id = s.id;
