# syntax=docker/dockerfile:1
#
# rtmp-relay: one image for every role. The role is the first argument:
#   docker run --rm -p 1935:1935 -p 8080:8080 rtmp-relay standalone      (the default CMD)
#   docker run ... rtmp-relay origin     (needs REDIS_URL, NATS_URL)
#   docker run ... rtmp-relay edge       (needs REDIS_URL, NATS_URL)
# Every setting is an environment variable (see `docker run --rm rtmp-relay standalone --help`).
#
# Stages: build (all workspace manifests for npm ci, then only the server, the libraries it links and the web console
# are compiled) -> deps (production dependencies of the server workspace only) -> runtime (Node.js LTS slim, tini as
# PID 1, non-root, no npm cache, no sources, no dev dependencies, nothing of the load tester).
#
# Base image: the current Node.js LTS (24), pinned by the digest of its multi-arch index (linux/amd64, linux/arm64),
# so a rebuild gets the same bytes until the digest is bumped on purpose. This one is node:24-slim = Node 24.19.0 on
# Debian bookworm, published 2026-08-03 (docker-library/repo-info, repos/node/remote/24-slim.md). To refresh:
#   docker buildx imagetools inspect node:24-slim --format '{{json .Manifest.Digest}}'
# (or that file), then update the digest here; the deploy test checks its form and that the major is supported.
# Build arguments for the OCI labels (the release workflow passes them): VERSION, REVISION (git commit), SOURCE, CREATED.

ARG NODE_IMAGE=node:24-slim@sha256:cd84903a12dbd26b46f1f3b8144a2568c41c5d37ddd0c7a80a34c7a19786b35f

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
# Sources of the server, its libraries and the console (.dockerignore keeps out node_modules, dist, tests and docs);
# the load tester's manifest is there for npm ci only.
COPY tsconfig.json tsconfig.base.json ./
COPY libs libs
COPY services services
RUN npx tsc -b services/server && npm run -w @rtmp-relay/console build

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
ARG NODE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/rtmp-relay/rtmp-relay
ARG CREATED=""
LABEL org.opencontainers.image.title="rtmp-relay" \
      org.opencontainers.image.description="RTMP edge/origin relay: origins take publishes, edges fan out to viewers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}/blob/main/docs/DEPLOY.md" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# tini is PID 1: it forwards SIGTERM to node (which drains, see DRAIN_DELAY_MS) and reaps zombies.
# jemalloc is the node's allocator (LD_PRELOAD below): glibc's malloc keeps the pages of freed Buffers resident, so
# a node's RSS stayed at its peak of Buffer garbage (+38-40 % on edges under churn); jemalloc returns them within
# seconds (docs/RELIABILITY.md, "Where the RSS goes"). The link gives one path on every architecture. To run with
# glibc's malloc instead: -e LD_PRELOAD= (empty).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libjemalloc2 \
 && ln -s "$(ls /usr/lib/*-linux-gnu/libjemalloc.so.2)" /usr/local/lib/libjemalloc.so.2 \
 && test -e /usr/local/lib/libjemalloc.so.2 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    RTMP_PORT=1935 \
    HTTP_PORT=8080 \
    LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
WORKDIR /app
# The server workspace only: its production node_modules and the manifests of the packages they link.
COPY --from=deps --chown=root:root /app/package.json ./
COPY --from=deps --chown=root:root /app/node_modules node_modules
COPY --from=deps --chown=root:root /app/libs/rtmp/package.json libs/rtmp/
COPY --from=deps --chown=root:root /app/libs/hub/package.json libs/hub/
COPY --from=deps --chown=root:root /app/services/server/package.json services/server/
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
# --max-semi-space-size=8: V8's young generation capped at 2 x 8 MiB (default 2 x 16): about 50 MiB less RSS at
# 2000 viewers for the same CPU (docs/BENCHMARKS.md, "Memory per viewer"). `npm start` and the benchmarks use it too.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--max-semi-space-size=8", "services/server/dist/cli.js"]
CMD ["standalone"]
