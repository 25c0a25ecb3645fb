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
