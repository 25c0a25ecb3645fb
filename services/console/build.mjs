#!/usr/bin/env node
// Builds the web console into dist/: one minified ES module bundle (the console and mpegts.js) and one stylesheet,
// both with content hashes in their names under dist/assets/ (served as immutable), and dist/index.html pointing at
// them (served with no-cache). Type checking is tsc -b's job (this package's tsconfig); esbuild only strips types.
// Usage: node services/console/build.mjs        (npm run build runs it after tsc -b)
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const dist = join(here, 'dist');
const assets = join(dist, 'assets');

export async function build() {
  const started = performance.now();
  await rm(assets, { recursive: true, force: true });
  await rm(join(dist, 'index.html'), { force: true });
  await mkdir(assets, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { console: join(src, 'main.ts'), style: join(src, 'style.css') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome105', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    outdir: assets,
    entryNames: '[name]-[hash]',
    metafile: true,
    absWorkingDir: here,
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const outputFor = (entry) => {
    for (const [out, meta] of Object.entries(result.metafile.outputs)) {
      if (meta.entryPoint && join(here, meta.entryPoint) === entry) return basename(out);
    }
    throw new Error(`esbuild produced no output for ${relative(here, entry)}`);
  };
  const js = outputFor(join(src, 'main.ts'));
  const css = outputFor(join(src, 'style.css'));
  const html = (await readFile(join(src, 'index.html'), 'utf8'))
    .replace('%CONSOLE_JS%', `assets/${js}`)
    .replace('%CONSOLE_CSS%', `assets/${css}`);
  if (html.includes('%CONSOLE_')) throw new Error('index.html has an unreplaced placeholder');
  await writeFile(join(dist, 'index.html'), html);
  const sizes = Object.entries(result.metafile.outputs)
    .filter(([out]) => !out.endsWith('.map'))
    .map(([out, meta]) => `${basename(out)} ${(meta.bytes / 1024).toFixed(1)} KiB`);
  console.log(
    `console: built ${relative(process.cwd(), dist) || '.'}/ in ${Math.round(performance.now() - started)} ms: index.html, ${sizes.join(', ')}`,
  );
  return { dist, js, css };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await build();
}
