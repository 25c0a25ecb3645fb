import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SETTINGS } from '../src/config.js';
import { settingsTable, withSettingsTable } from '../src/settings-table.js';

const README = new URL('../../../README.md', import.meta.url);

describe('README settings table', () => {
  it('is the one generated from SETTINGS (run `npm run docs:settings` after changing a setting)', () => {
    const readme = readFileSync(README, 'utf8');
    assert.equal(readme, withSettingsTable(readme), 'README.md is out of date: npm run docs:settings');
  });

  it('lists every setting once, with its flag and default', () => {
    const table = settingsTable();
    for (const s of SETTINGS) {
      const rows = table.split('\n').filter((l) => l.startsWith(`| \`${s.env}\` |`));
      assert.equal(rows.length, 1, s.env);
      assert.ok(rows[0]!.includes(`\`--${s.flag}\``), s.env);
    }
  });
});
