-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "AddonCategory" AS ENUM ('ECOMMERCE', 'ANALYTICS', 'MARKETING', 'COMMUNICATION', 'UTILITIES');

-- CreateEnum
CREATE TYPE "WidgetCategory" AS ENUM ('CONTENT', 'FORM', 'DISPLAY', 'INTERACTIVE', 'LAYOUT');

-- CreateEnum
CREATE TYPE "ApiKeyRole" AS ENUM ('ADMIN', 'DEVELOPER', 'SITE');

-- CreateTable
CREATE TABLE "Developer" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Developer_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Site" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "domain" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Site_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiKey" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "prefix" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "role" "ApiKeyRole" NOT NULL,
    "siteId" UUID,
    "developerId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastUsedAt" TIMESTAMP(3),
    "revokedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Addon" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "displayName" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "author" TEXT NOT NULL,
    "category" "AddonCategory" NOT NULL,
    "ownerId" UUID,
    "latestVersionId" UUID,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Addon_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AddonVersion" (
    "id" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "version" TEXT NOT NULL,
    "manifest" JSONB NOT NULL,
    "source" TEXT NOT NULL,
    "sourceSha256" TEXT NOT NULL,
    "wasm" BYTEA,
    "permissions" TEXT[],
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AddonVersion_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Widget" (
    "id" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "addonVersionId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "displayName" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "category" "WidgetCategory" NOT NULL,
    "configSchema" JSONB NOT NULL,
    "previewImage" TEXT,
    "responsive" BOOLEAN NOT NULL DEFAULT true,
    "varyOn" TEXT[],

    CONSTRAINT "Widget_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ApiFunction" (
    "id" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "addonVersionId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "readonly" BOOLEAN NOT NULL DEFAULT false,
    "inputSchema" JSONB,

    CONSTRAINT "ApiFunction_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AddonDependency" (
    "id" UUID NOT NULL,
    "addonVersionId" UUID NOT NULL,
    "addonName" TEXT NOT NULL,
    "range" TEXT NOT NULL,

    CONSTRAINT "AddonDependency_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Installation" (
    "id" UUID NOT NULL,
    "siteId" UUID NOT NULL,
    "addonId" UUID NOT NULL,
    "addonVersionId" UUID NOT NULL,
    "config" JSONB NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Installation_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Developer_name_key" ON "Developer"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Site_domain_key" ON "Site"("domain");

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- CreateIndex
CREATE UNIQUE INDEX "Addon_name_key" ON "Addon"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Addon_latestVersionId_key" ON "Addon"("latestVersionId");

-- CreateIndex
CREATE INDEX "Addon_category_idx" ON "Addon"("category");

-- CreateIndex
CREATE UNIQUE INDEX "AddonVersion_addonId_version_key" ON "AddonVersion"("addonId", "version");

-- CreateIndex
CREATE INDEX "Widget_category_idx" ON "Widget"("category");

-- CreateIndex
CREATE UNIQUE INDEX "Widget_addonVersionId_name_key" ON "Widget"("addonVersionId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "ApiFunction_addonVersionId_name_key" ON "ApiFunction"("addonVersionId", "name");

-- CreateIndex
CREATE INDEX "AddonDependency_addonName_idx" ON "AddonDependency"("addonName");

-- CreateIndex
CREATE UNIQUE INDEX "AddonDependency_addonVersionId_addonName_key" ON "AddonDependency"("addonVersionId", "addonName");

-- CreateIndex
CREATE INDEX "Installation_addonId_idx" ON "Installation"("addonId");

-- CreateIndex
CREATE UNIQUE INDEX "Installation_siteId_addonId_key" ON "Installation"("siteId", "addonId");

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_siteId_fkey" FOREIGN KEY ("siteId") REFERENCES "Site"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ApiKey" ADD CONSTRAINT "ApiKey_developerId_fkey" FOREIGN KEY ("developerId") REFERENCES "Developer"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Addon" ADD CONSTRAINT "Addon_ownerId_fkey" FOREIGN KEY ("ownerId") REFERENCES "Developer"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Addon" ADD CONSTRAINT "Addon_latestVersionId_fkey" FOREIGN KEY ("latestVersionId") REFERENCES "AddonVersion"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AddonVersion" ADD CONSTRAINT "AddonVersion_addonId_fkey" FOREIGN KEY ("addonId") REFERENCES "Addon"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Widget" ADD CONSTRAINT "Widget_addonId_fkey" FOREIGN KEY ("addonId") REFERENCES "Addon"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Widget" ADD CONSTRAINT "Widget_addonVersionId_fkey" FOREIGN KEY ("addonVersionId") REFERENCES "AddonVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ApiFunction" ADD CONSTRAINT "ApiFunction_addonId_fkey" FOREIGN KEY ("addonId") REFERENCES "Addon"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ApiFunction" ADD CONSTRAINT "ApiFunction_addonVersionId_fkey" FOREIGN KEY ("addonVersionId") REFERENCES "AddonVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AddonDependency" ADD CONSTRAINT "AddonDependency_addonVersionId_fkey" FOREIGN KEY ("addonVersionId") REFERENCES "AddonVersion"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Installation" ADD CONSTRAINT "Installation_siteId_fkey" FOREIGN KEY ("siteId") REFERENCES "Site"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Installation" ADD CONSTRAINT "Installation_addonId_fkey" FOREIGN KEY ("addonId") REFERENCES "Addon"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Installation" ADD CONSTRAINT "Installation_addonVersionId_fkey" FOREIGN KEY ("addonVersionId") REFERENCES "AddonVersion"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
