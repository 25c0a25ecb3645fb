#!/usr/bin/env node
// The suite's unit part (no servers, no media tools: the protocol and hub libraries, configuration, sizing plan) on
// another supported Node.js major, with that major's official binary from the npm registry (registry-node.mjs).
// Usage: node scripts/test-on-node.mjs <major> [more path filters]      npm run test:node -- 22
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registryNode } from './registry-node.mjs';

export const UNIT_FILTERS = ['libs/', 'services/server/test/config.test', 'services/server/test/plan.test'];

/**
 * Test files that fail on a major, each with why. scripts/node-versions.test.ts checks that they still fail (so an
 * entry goes when its cause is fixed). None now: Node 24's 64 KiB Buffer pool broke the chunk reader's memory
 * accounting until it switched to pool-independent copies.
 */
export const KNOWN_FAILURES = {};

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.argv[1] !== fileURLToPath(import.meta.url)) throw new Error('run test-on-node.mjs, do not import it');
const [major = '22', ...extra] = process.argv.slice(2);
const node = registryNode(Number(major));
const excluded = (KNOWN_FAILURES[major] ?? []).map((f) => `--exclude=${f}`);
const r = spawnSync(node, [join(ROOT, 'scripts/run-tests.mjs'), ...UNIT_FILTERS, ...excluded, ...extra], {
  cwd: ROOT,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
