-- CreateTable
CREATE TABLE "EventIdempotencyKey" (
    "scope" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "eventId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "EventIdempotencyKey_pkey" PRIMARY KEY ("scope","key")
);

-- CreateTable
CREATE TABLE "WidgetGeneration" (
    "siteId" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "generation" BIGINT NOT NULL DEFAULT 1,
    "txid" BIGINT NOT NULL DEFAULT txid_current(),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "WidgetGeneration_pkey" PRIMARY KEY ("siteId","addonId")
);

-- CreateIndex
CREATE INDEX "EventIdempotencyKey_createdAt_idx" ON "EventIdempotencyKey"("createdAt");

-- CreateIndex
CREATE INDEX "WidgetGeneration_txid_idx" ON "WidgetGeneration"("txid");

-- CreateIndex
CREATE INDEX "Event_txid_seq_idx" ON "Event"("txid", "seq");
