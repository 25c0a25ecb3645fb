/**
 * The Node/V8 flags a relay node runs with when started the shipped way: the image's ENTRYPOINT and `npm start`
 * (deploy.test.ts keeps those two and this list equal). The benchmarks and the cluster runner start our nodes with
 * them too, so they measure what ships.
 *
 * `--max-semi-space-size=8` caps V8's young generation at 2 x 8 MiB; by default it grows to 2 x 16 MiB under a
 * fan-out's allocation rate (every socket write makes a few short-lived objects). Measured at 2000 viewers on one
 * core: RSS flat at 117 MiB for 2 minutes instead of 169-174 MiB, Buffer memory 4-10 MiB instead of climbing to
 * 36 MiB between full collections, CPU per viewer unchanged (docs/BENCHMARKS.md, "Memory per viewer").
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/**
 * The memory allocator a relay node runs with. The image preloads jemalloc (Dockerfile: libjemalloc2 and
 * `LD_PRELOAD=/usr/local/lib/libjemalloc.so.2`); `system` is glibc's malloc.
 *
 * Why: a node's Buffers (chunked messages, GOP caches, socket reads) are freed in bulk when V8 collects them, and
 * glibc keeps most of the freed pages resident, so RSS stays at the peak of Buffer garbage between full collections
 * (up to V8's 64 MiB external-memory step). jemalloc gives them back within seconds (its decay). Measured at the
 * medium cluster size with churn: edges stayed at +38-40 % over the steady window with glibc, and came back to -4 to
 * -11 % with jemalloc (docs/RELIABILITY.md, "Where the RSS goes").
 */
export const NODE_MALLOCS = ['jemalloc', 'system'] as const;
export type NodeMalloc = (typeof NODE_MALLOCS)[number];

/** Where the image puts it (an architecture-neutral link), then where Debian installs it on this architecture. */
export function jemallocCandidates(arch: string = process.arch): string[] {
  const triplet = arch === 'arm64' ? 'aarch64-linux-gnu' : arch === 'x64' ? 'x86_64-linux-gnu' : `${arch}-linux-gnu`;
  return ['/usr/local/lib/libjemalloc.so.2', `/usr/lib/${triplet}/libjemalloc.so.2`];
}

export interface NodeMallocChoice {
  /** What the node will actually run with. */
  malloc: NodeMalloc;
  /** Environment to add to the node's (LD_PRELOAD, or LD_PRELOAD emptied for `system`). */
  env: Record<string, string>;
  /** Set when jemalloc was asked for and is not installed here: the run falls back to the system allocator. */
  warning?: string;
}

/** The environment that makes a node run with `wanted`, given which files exist. */
export function nodeMallocEnv(
  wanted: NodeMalloc,
  exists: (path: string) => boolean,
  arch: string = process.arch,
): NodeMallocChoice {
  // An inherited LD_PRELOAD (e.g. the runner itself started under jemalloc) must not decide for the node.
  if (wanted === 'system') return { malloc: 'system', env: { LD_PRELOAD: '' } };
  const lib = jemallocCandidates(arch).find(exists);
  if (lib) return { malloc: 'jemalloc', env: { LD_PRELOAD: lib } };
  return {
    malloc: 'system',
    env: { LD_PRELOAD: '' },
    warning:
      'jemalloc is not installed (apt-get install libjemalloc2): nodes run with the system allocator, unlike the ' +
      'image; their RSS will read higher than what ships',
  };
}
