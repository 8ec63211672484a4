-- AlterTable
ALTER TABLE "Installation" ADD COLUMN     "grantedPermissions" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- AlterTable
ALTER TABLE "Execution" ADD COLUMN     "parentExecutionId" UUID;

-- CreateTable
CREATE TABLE "AddonQuarantine" (
    "addonVersionId" UUID NOT NULL,
    "siteId" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "addonName" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'CLOSED',
    "failures" INTEGER NOT NULL DEFAULT 0,
    "windowStartedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "trips" INTEGER NOT NULL DEFAULT 0,
    "openUntil" TIMESTAMPTZ(3),
    "probeUntil" TIMESTAMPTZ(3),
    "lastReason" TEXT,
    "changedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AddonQuarantine_pkey" PRIMARY KEY ("addonVersionId","siteId")
);

-- CreateIndex
CREATE INDEX "AddonQuarantine_state_idx" ON "AddonQuarantine"("state");

-- Existing installations have granted what their pinned version asks for.
UPDATE "Installation" i SET "grantedPermissions" = v."permissions"
FROM "AddonVersion" v WHERE v."id" = i."addonVersionId";
