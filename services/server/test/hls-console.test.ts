/**
 * The console's LL-HLS player (hls.js, low-latency mode) in Debian's Chromium against a standalone node with 1 s
 * parts while FFmpeg publishes: pressing play over LL-HLS plays the stream (currentTime advances, frames are
 * decoded, the picture has the published size) and the latency the page measures (wall clock minus the program
 * date time of the frame on screen) stays under 3 s.
 *
 * Chromium must be at /usr/bin/chromium (.ci/run installs Debian's package); without it this test fails, not skips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ffmpegPublish } from './support/media-tools.js';
import { startTestNode, waitLive, type NodeUnderTest } from './support/node-under-test.js';
import { stopAll } from './support/processes.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CONSOLE_BUILD = fileURLToPath(new URL('../../console/build.mjs', import.meta.url));
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];
const WIDTH = 320;
const HEIGHT = 240;
/** The bound for the browser's latency with 1 s parts. */
const LATENCY_BUDGET_MS = 3000;
const KEY = 'live/hlscam';

async function waitInPage<A>(
  page: Page,
  what: string,
  fn: (arg: A) => unknown,
  arg: A,
  timeoutMs = 15_000,
): Promise<void> {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 100 });
  } catch (err) {
    const perr = await page.textContent('#player-error').catch(() => '?');
    throw new Error(`timed out waiting for ${what} (player error: ${perr}): ${(err as Error).message.split('\n')[0]}`);
  }
}

describe('console in Chromium: LL-HLS with hls.js', () => {
  let node: NodeUnderTest;
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  const errors: string[] = [];

  before(async () => {
    execFileSync(process.execPath, [CONSOLE_BUILD], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
    node = await startTestNode({ HLS_PART_MS: '1000', HLS_SEGMENT_MS: '2000' });
  });

  after(async () => {
    if (errors.length) console.log(`hls console: browser messages:\n  ${errors.join('\n  ')}`);
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await stopAll();
    await node?.shutdown('test');
  });

  it('plays over LL-HLS: frames advance at the published size, latency under 3 s with 1 s parts', async () => {
    ffmpegPublish(node.rtmpUrl(KEY), { seconds: 90, size: `${WIDTH}x${HEIGHT}`, rate: 30, gop: 30 });
    await waitLive(node, KEY);
    assert.ok(existsSync(CHROMIUM), `Chromium is not installed at ${CHROMIUM} (apt-get install -y chromium)`);
    profile = mkdtempSync(join(tmpdir(), 'hls-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console.error: ${msg.text()}`);
    });
    await page.goto(`http://127.0.0.1:${node.httpPort}/console/`);
    await waitInPage(
      page,
      `${KEY} listed`,
      (k) => !!document.querySelector(`#player-stream option[value="${k}"]`),
      KEY,
    );
    await page.selectOption('#player-stream', KEY);
    await page.selectOption('#player-transport', 'hls');
    const pressed = performance.now();
    await page.click('#play');
    await waitInPage(
      page,
      'HLS playback to start',
      () => (document.querySelector('video') as HTMLVideoElement).currentTime > 0,
      null,
      20_000,
    );
    const startedMs = performance.now() - pressed;
    const url = await page.textContent('#player-stats dd[data-stat="url"]');
    assert.match(url ?? '', new RegExp(`/live/hlscam/index\\.m3u8$`));
    const frames0 = await page.evaluate(
      () => (document.querySelector('video') as HTMLVideoElement).getVideoPlaybackQuality().totalVideoFrames,
    );
    const t0 = await page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime);
    await waitInPage(
      page,
      'currentTime to advance 3 s',
      (t) => (document.querySelector('video') as HTMLVideoElement).currentTime > (t as number) + 3,
      t0,
      15_000,
    );
    // Latency, sampled once a second for 5 s after the player settled.
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      await waitInPage(
        page,
        'a latency sample',
        () =>
          document.querySelector<HTMLElement>('#player-stats dd[data-stat="latency"]')?.dataset.latencyMs !== undefined,
        null,
        5000,
      );
      samples.push(
        await page.evaluate(() =>
          Number(document.querySelector<HTMLElement>('#player-stats dd[data-stat="latency"]')!.dataset.latencyMs),
        ),
      );
      const t = await page.evaluate(() => (document.querySelector('video') as HTMLVideoElement).currentTime);
      await waitInPage(
        page,
        'one more second of playback',
        (x) => (document.querySelector('video') as HTMLVideoElement).currentTime > (x as number) + 1,
        t,
        5000,
      );
    }
    const v = await page.evaluate(() => {
      const video = document.querySelector('video') as HTMLVideoElement;
      return {
        width: video.videoWidth,
        height: video.videoHeight,
        paused: video.paused,
        frames: video.getVideoPlaybackQuality().totalVideoFrames,
        transport: video.dataset.transport,
      };
    });
    assert.equal(v.transport, 'hls');
    assert.equal(v.paused, false);
    assert.equal(v.width, WIDTH);
    assert.equal(v.height, HEIGHT);
    assert.ok(v.frames - frames0 >= 3 * 30 * 0.8, `frames decoded while playing: ${v.frames - frames0}`);
    const sorted = [...samples].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(
      `hls console: started in ${startedMs.toFixed(0)} ms; latency samples ${samples.join(', ')} ms (median ${median})`,
    );
    assert.ok(
      median < LATENCY_BUDGET_MS,
      `LL-HLS latency ${median} ms with 1 s parts (budget ${LATENCY_BUDGET_MS} ms)`,
    );
    assert.ok((await node.metric('hls_requests_total', { type: 'part', status: '200' })) > 0, 'hls.js fetched parts');
  });
});
