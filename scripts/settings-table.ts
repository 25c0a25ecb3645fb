// Rewrites the settings table in README.md from the SETTINGS table (services/server/src/config.ts).
// Usage: npm run docs:settings            (a test fails when README.md is out of date)
import { readFileSync, writeFileSync } from 'node:fs';
import { withSettingsTable } from '../services/server/src/settings-table.js';

const path = new URL('../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withSettingsTable(before);
if (after === before) console.log('README.md settings table is up to date');
else {
  writeFileSync(path, after);
  console.log('README.md settings table rewritten');
}
