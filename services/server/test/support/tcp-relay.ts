import { connect, createServer, type Server, type Socket } from 'node:net';

export interface RelayOptions {
  /** Where to forward (default 127.0.0.1). */
  targetHost?: string;
  /** Hold every chunk this long in each direction (order kept): a link's one-way delay, where there is no netem. */
  delayMs?: number;
  /** Hold each new connection this long before connecting onward (a peer slow to accept). */
  acceptDelayMs?: number;
}

/** A TCP relay listening on `host` (any port) that forwards to `targetHost`:`targetPort`. */
export class Relay {
  private readonly sockets = new Set<Socket>();
  isCut = false;
  /** Connections accepted so far. */
  connections = 0;
  private constructor(private readonly server: Server) {}

  static async open(host: string, targetPort: number, opts: RelayOptions = {}): Promise<Relay> {
    const server = createServer();
    const relay = new Relay(server);
    const link = (c: Socket): void => {
      const u = connect(targetPort, opts.targetHost ?? '127.0.0.1');
      relay.sockets.add(u);
      // A cut relay keeps its connections open and forwards nothing (a partition, not a reset).
      forward(c, u, relay, opts.delayMs ?? 0);
      forward(u, c, relay, opts.delayMs ?? 0);
      c.resume();
      const end = () => {
        c.destroy();
        u.destroy();
      };
      c.on('error', end).on('close', end);
      u.on('error', end).on('close', end);
    };
    server.on('connection', (c) => {
      relay.connections++;
      relay.sockets.add(c);
      if (!opts.acceptDelayMs) return link(c);
      c.pause();
      const timer = setTimeout(() => link(c), opts.acceptDelayMs);
      c.once('close', () => clearTimeout(timer)).on('error', () => clearTimeout(timer));
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
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

/** Writes what `from` reads to `to` (unless the relay is cut), each chunk `delayMs` after it arrived, in order. */
function forward(from: Socket, to: Socket, relay: Relay, delayMs: number): void {
  if (delayMs <= 0) {
    from.on('data', (d: Buffer) => void (relay.isCut || to.write(d)));
    return;
  }
  const queue: Array<{ due: number; data: Buffer }> = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { data } = queue.shift()!;
      if (!relay.isCut) to.write(data);
    }
    if (queue.length > 0) timer = setTimeout(flush, queue[0]!.due - now);
  };
  from.on('data', (data: Buffer) => {
    queue.push({ due: performance.now() + delayMs, data });
    timer ??= setTimeout(flush, delayMs);
  });
  from.on('close', () => clearTimeout(timer));
}
