-- Written by hand: the Prisma schema language cannot declare a partial index, so it is not in
-- schema.prisma (and `db:diff`, which diffs schema against schema, never proposes to drop it).
--
-- The delivery worker's claim walks the (site, addon) flows that have PENDING deliveries, one
-- probe each, and reads the oldest due rows of each (DeliveryRepository.claimFast): taking turns
-- across flows keeps one site's backlog of a shared addon from delaying the other sites' deliveries
-- of that addon. Only PENDING rows are indexed: the finished ones, most of the table, cost nothing.
-- (No semicolon inside these comments: the script is split on every one before it runs.)

-- CreateIndex
CREATE INDEX "Delivery_pending_flow_idx" ON "Delivery" ("siteId", "addonId", "nextAttemptAt")
  WHERE status = 'PENDING';
