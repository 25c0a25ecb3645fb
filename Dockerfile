# syntax=docker/dockerfile:1
#
# rtmp-relay: one image for every role. The role is the first argument:
#   docker run --rm -p 1935:1935 -p 8080:8080 rtmp-relay standalone      (the default CMD)
#   docker run ... rtmp-relay origin     (needs REDIS_URL, NATS_URL)
#   docker run ... rtmp-relay edge       (needs REDIS_URL, NATS_URL)
# Every setting is an environment variable (see `docker run --rm rtmp-relay standalone --help`).
#
# Stages: build (all workspaces, dev dependencies, `npm run build`: tsc -b and the web console bundle) -> deps (production dependencies of the server
# workspace only) -> runtime (node:20-slim, tini as PID 1, non-root, no npm cache, no sources, no dev dependencies).

ARG NODE_IMAGE=node:20-slim

# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Manifests first: the npm ci layer is cached until a package.json or the lock file changes.
COPY package.json package-lock.json ./
COPY libs/rtmp/package.json libs/rtmp/
COPY libs/hub/package.json libs/hub/
COPY services/server/package.json services/server/
COPY loadtest/package.json loadtest/
COPY services/console/package.json services/console/
RUN npm ci --no-audit --no-fund
# Sources of every workspace (.dockerignore keeps out node_modules, dist, tests and docs).
COPY tsconfig.json tsconfig.base.json ./
COPY libs libs
COPY services services
COPY loadtest loadtest
RUN npm run build

# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY libs/rtmp/package.json libs/rtmp/
COPY libs/hub/package.json libs/hub/
COPY services/server/package.json services/server/
COPY loadtest/package.json loadtest/
COPY services/console/package.json services/console/
# Production dependencies of the server and the libraries it links (workspace symlinks), nothing of the load tester.
RUN npm ci --omit=dev --workspace=@rtmp-relay/server --include-workspace-root=false --no-audit --no-fund \
 && npm cache clean --force

# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rtmp-relay" \
      org.opencontainers.image.description="RTMP edge/origin relay: origins take publishes, edges fan out to viewers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini is PID 1: it forwards SIGTERM to node (which drains, see DRAIN_DELAY_MS) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    RTMP_PORT=1935 \
    HTTP_PORT=8080
WORKDIR /app
COPY --from=deps --chown=root:root /app ./
COPY --from=build --chown=root:root /src/libs/rtmp/dist libs/rtmp/dist
COPY --from=build --chown=root:root /src/libs/hub/dist libs/hub/dist
COPY --from=build --chown=root:root /src/services/server/dist services/server/dist
# The web console the node serves at /console/ (static files: the page and its hashed assets).
COPY --from=build --chown=root:root /src/services/console/dist/index.html services/console/dist/index.html
COPY --from=build --chown=root:root /src/services/console/dist/assets services/console/dist/assets
# The files are root-owned and read-only for the process; it writes nothing (read-only root filesystem in Kubernetes).
# uid/gid 1000 is the image's `node` user; numeric so Kubernetes can verify runAsNonRoot.
USER 1000:1000
EXPOSE 1935 8080
# Probes 127.0.0.1: keep HTTP_HOST at its default (all interfaces) or an address that includes loopback.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "services/server/dist/cli.js"]
CMD ["standalone"]
