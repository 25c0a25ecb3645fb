import { loadConfig } from '../../src/config.js';
import { startNode, type RunningNode } from '../../src/node.js';

export interface NodeUnderTest extends RunningNode {
  rtmpUrl(path: string): string;
  http(path: string): Promise<Response>;
  json<T = any>(path: string): Promise<T>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** Starts an in-process standalone node on free ports (settings as env vars, like the real CLI). */
export async function startTestNode(env: Record<string, string> = {}): Promise<NodeUnderTest> {
  const config = loadConfig({
    env: {
      RTMP_HOST: '127.0.0.1',
      RTMP_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      HTTP_PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      SHUTDOWN_TIMEOUT_MS: '1000',
      ...env,
    },
  });
  const node = await startNode(config, { role: 'standalone' });
  const base = `http://127.0.0.1:${node.httpPort}`;
  const http = (path: string): Promise<Response> => fetch(base + path, { signal: AbortSignal.timeout(5000) });
  return {
    ...node,
    rtmpUrl: (path) => `rtmp://127.0.0.1:${node.rtmpPort}/${path}`,
    http,
    json: async <T>(path: string) => (await (await http(path)).json()) as T,
    metric: async (name, labels = {}) => {
      const text = await (await http('/metrics')).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const ok = Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`));
        if (ok) sum += Number(m[3]);
      }
      return sum;
    },
  };
}

/** Waits until the stream is live on the node. */
export async function waitLive(node: NodeUnderTest, key: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await node.http(`/api/streams/${key}`);
    if (res.status === 200 && ((await res.json()) as { live?: boolean }).live) return;
    if (Date.now() > deadline) throw new Error(`stream ${key} not live after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
