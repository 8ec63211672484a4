# syntax=docker/dockerfile:1

# ---- build: compile TypeScript, then drop dev dependencies ----
# isolated-vm 7 ships prebuilt binaries for Node 24 (glibc and musl), so no compiler is needed.
FROM node:24-bookworm-slim AS build
# package.json's "allowScripts" (no install script runs: isolated-vm is prebuilt, Prisma's engine
# download is refused) needs the npm this project is locked with.
RUN npm install -g npm@11.19.1
WORKDIR /app

# Dependencies first, so this layer is reused until package*.json or the Prisma schema change.
# postinstall runs `prisma generate`, which needs the schema, its config and the script.
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund && node scripts/check-native-modules.mjs

COPY tsconfig.json ./
COPY src ./src
RUN npm run build \
    && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    DATA_DIR=/app/.data
WORKDIR /app

COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist/src ./dist/src
# The dashboard's static files: tsc does not copy them, the server reads them at start.
COPY --from=build --chown=node:node /app/src/dashboard/public ./src/dashboard/public
# Applied at start (MIGRATE_ON_START) from prisma/migrations, located beside package.json.
COPY --from=build --chown=node:node /app/prisma ./prisma
# Without DATABASE_URL the server keeps an embedded PostgreSQL here; mount a volume to keep it.
RUN mkdir -p /app/.data && chown node:node /app/.data

USER node
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# isolated-vm's README requires --no-node-snapshot from Node 20 on; the larger young generation and
# the single V8 background thread are explained in docs (Running in production, Node flags).
CMD ["node", "--no-node-snapshot", "--max-semi-space-size=32", "--v8-pool-size=1", "dist/src/main.js"]
