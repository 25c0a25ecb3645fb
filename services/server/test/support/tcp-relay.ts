import { connect, createServer, type Server, type Socket } from 'node:net';

/** A TCP relay listening on `host` (any port) that forwards to 127.0.0.1:`targetPort`. */
export class Relay {
  private readonly sockets = new Set<Socket>();
  isCut = false;
  /** Connections accepted so far. */
  connections = 0;
  private constructor(private readonly server: Server) {}

  static async open(host: string, targetPort: number): Promise<Relay> {
    const server = createServer();
    const relay = new Relay(server);
    server.on('connection', (c) => {
      relay.connections++;
      const u = connect(targetPort, '127.0.0.1');
      relay.sockets.add(c).add(u);
      // A cut relay keeps its connections open and forwards nothing (a partition, not a reset).
      c.on('data', (d: Buffer) => void (relay.isCut || u.write(d)));
      u.on('data', (d: Buffer) => void (relay.isCut || c.write(d)));
      const end = () => {
        c.destroy();
        u.destroy();
      };
      c.on('error', end).on('close', end);
      u.on('error', end).on('close', end);
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
