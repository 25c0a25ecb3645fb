/**
 * A TCP relay that adds a fixed one-way delay in each direction (order kept), standing for the network between two
 * nodes where the machine has no netem qdisc: a round trip through it costs 2 × `delayMs` more. Per byte stream, not
 * per packet (no loss, no reordering), which is what a round-trip count needs.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class DelayRelay {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /** Listens on `host`:`port` (0: any free port) and forwards each connection to `target`. */
  static async open(
    listen: { host: string; port: number },
    target: { host: string; port: number },
    delayMs: number,
  ): Promise<DelayRelay> {
    const server = createServer();
    const relay = new DelayRelay(server);
    server.on('connection', (c) => {
      const u = connect({ port: target.port, host: target.host, noDelay: true });
      c.setNoDelay(true); // a link adds its delay, not Nagle's: each piece goes out when it is due
      relay.sockets.add(c).add(u);
      delayed(c, u, delayMs);
      delayed(u, c, delayMs);
      const end = (): void => {
        c.destroy();
        u.destroy();
        relay.sockets.delete(c);
        relay.sockets.delete(u);
      };
      c.on('error', end).on('close', end);
      u.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    return relay;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Writes what `from` reads to `to`, each piece `delayMs` after it arrived, in order (one timer per direction). */
function delayed(from: Socket, to: Socket, delayMs: number): void {
  const queue: Array<{ due: number; data: Buffer }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) to.write(queue.shift()!.data);
    if (queue.length > 0) timer = setTimeout(flush, queue[0]!.due - now);
  };
  from.on('data', (data: Buffer) => {
    queue.push({ due: performance.now() + delayMs, data });
    timer ??= setTimeout(flush, delayMs);
  });
}
