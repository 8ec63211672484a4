# syntax=docker/dockerfile:1

# ---- build: compile TypeScript and the native isolated-vm addon, then drop dev dependencies ----
FROM node:20-bookworm-slim AS build
# isolated-vm compiles with node-gyp at install time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
# package.json's "allowScripts" (which install scripts may run: isolated-vm yes, Prisma's engine
# download no) is an npm 11 feature; the npm 10 bundled with Node 20 would run every script.
RUN npm install -g npm@11.19.1
WORKDIR /app

# Dependencies first, so this layer is reused until package*.json or the Prisma schema change.
# postinstall runs `prisma generate`, which needs the schema, its config and the script.
COPY package.json package-lock.json prisma.config.ts ./
COPY scripts ./scripts
COPY prisma ./prisma
RUN npm ci --no-audit --no-fund

COPY tsconfig.json ./
COPY src ./src
RUN npm run build \
    && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ----
FROM node:20-bookworm-slim AS runtime
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
# isolated-vm needs --no-node-snapshot on Node 20 and later; the larger young generation and the
# single V8 background thread are explained in the README (Running in production, Node flags).
CMD ["node", "--no-node-snapshot", "--max-semi-space-size=32", "--v8-pool-size=1", "dist/src/main.js"]
