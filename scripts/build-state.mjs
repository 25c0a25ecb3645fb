// What `npm start` must build before it runs: each output with the sources it is built from.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every TypeScript project's build info (tsc -b rewrites it whenever that project's sources change) and the console
 * bundle's index.html, each with its sources.
 */
export const PARTS = [
  ...['libs/rtmp', 'libs/hub', 'services/server'].map((p) => ({
    output: `${p}/dist/.tsbuildinfo`,
    sources: [`${p}/src`, `${p}/tsconfig.json`, 'tsconfig.base.json'],
  })),
  {
    output: 'services/console/dist/index.html',
    sources: ['services/console/src', 'services/console/build.mjs', 'services/console/tsconfig.json'],
  },
];
export const CLI_REL = 'services/server/dist/cli.js';

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let t = 0;
  for (const e of readdirSync(path)) t = Math.max(t, newest(join(path, e)));
  return t;
}

/** Why `root` needs a build, or undefined when every output is newer than its sources. */
export function staleReason(root) {
  if (!existsSync(join(root, CLI_REL))) return `${CLI_REL} is missing`;
  for (const { output, sources } of PARTS) {
    const out = join(root, output);
    if (!existsSync(out)) return `${output} is missing`;
    const built = statSync(out).mtimeMs;
    const changed = sources.find((s) => newest(join(root, s)) > built);
    if (changed) return `${changed} changed since ${output} was built`;
  }
  return undefined;
}
