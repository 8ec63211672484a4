-- CreateTable
CREATE TABLE "AddonStorage" (
    "addonId" UUID NOT NULL,
    "siteId" UUID NOT NULL,
    "key" TEXT NOT NULL,
    "value" JSONB NOT NULL,
    "sizeBytes" INTEGER NOT NULL,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "AddonStorage_pkey" PRIMARY KEY ("addonId","siteId","key")
);

-- CreateTable
CREATE TABLE "Execution" (
    "id" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "addonName" TEXT NOT NULL,
    "addonVersionId" UUID NOT NULL,
    "version" TEXT NOT NULL,
    "siteId" UUID,
    "kind" TEXT NOT NULL,
    "entry" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "errorMessage" TEXT,
    "durationMs" DOUBLE PRECISION NOT NULL,
    "cpuTimeMs" DOUBLE PRECISION NOT NULL,
    "cold" BOOLEAN NOT NULL DEFAULT false,
    "logs" JSONB NOT NULL,
    "logsTruncated" BOOLEAN NOT NULL DEFAULT false,
    "requestId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Execution_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Event" (
    "id" UUID NOT NULL,
    "seq" BIGSERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "sourceAddonId" UUID,
    "source" TEXT NOT NULL,
    "siteId" UUID,
    "data" JSONB NOT NULL,
    "requestId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Execution_createdAt_idx" ON "Execution"("createdAt");

-- CreateIndex
CREATE INDEX "Execution_addonId_createdAt_idx" ON "Execution"("addonId", "createdAt");

-- CreateIndex
CREATE INDEX "Execution_siteId_createdAt_idx" ON "Execution"("siteId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "Event_seq_key" ON "Event"("seq");

-- CreateIndex
CREATE INDEX "Event_siteId_createdAt_idx" ON "Event"("siteId", "createdAt");

-- CreateIndex
CREATE INDEX "Event_name_createdAt_idx" ON "Event"("name", "createdAt");
