/**
 * Kernel socket queues between the server and the load generator, from /proc/net/tcp and tcp6 (Linux).
 *
 * On loopback the receiving kernel acknowledges data as soon as it is queued for the reading process, so:
 * - the server's **send queue** (tx_queue of the sockets on the server's port) grows only when a viewer's receive
 *   buffer is full, i.e. when the server's writes start to wait for the reader;
 * - the generator's **receive queue** (rx_queue of the sockets connected to that port) is what the viewers have not
 *   read yet: the generator's own lag, in bytes.
 * A generator that is busy but whose lag stays in the receive queues leaves the server's writes unaffected: its
 * CPU figure is still the server's, though its latency figures include that lag.
 */
import { readFileSync } from 'node:fs';

export interface QueueSample {
  /** Established sockets on the server's port (server side). */
  serverSockets: number;
  /** Sum and largest tx_queue over them, bytes. */
  serverSendBytes: number;
  serverSendMaxBytes: number;
  /** Sockets connected to the server's port (client side: the viewers and the publisher). */
  clientSockets: number;
  /** Sum and largest rx_queue over them, bytes. */
  clientReceiveBytes: number;
  clientReceiveMaxBytes: number;
}

const TCP_ESTABLISHED = '01';

function portOf(address: string): number {
  return parseInt(address.slice(address.lastIndexOf(':') + 1), 16);
}

/** Adds one /proc/net/tcp* table's sockets on `port` to `into`. */
export function addQueues(table: string, port: number, into: QueueSample): void {
  const lines = table.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 5 || f[3] !== TCP_ESTABLISHED) continue;
    const [tx, rx] = f[4]!.split(':').map((h) => parseInt(h, 16)) as [number, number];
    if (portOf(f[1]!) === port) {
      into.serverSockets++;
      into.serverSendBytes += tx;
      if (tx > into.serverSendMaxBytes) into.serverSendMaxBytes = tx;
    } else if (portOf(f[2]!) === port) {
      into.clientSockets++;
      into.clientReceiveBytes += rx;
      if (rx > into.clientReceiveMaxBytes) into.clientReceiveMaxBytes = rx;
    }
  }
}

export function emptyQueueSample(): QueueSample {
  return {
    serverSockets: 0,
    serverSendBytes: 0,
    serverSendMaxBytes: 0,
    clientSockets: 0,
    clientReceiveBytes: 0,
    clientReceiveMaxBytes: 0,
  };
}

/** One sample of the queues on the server's TCP port (loopback, both address families); undefined off Linux. */
export function sampleQueues(port: number): QueueSample | undefined {
  const out = emptyQueueSample();
  let read = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      addQueues(readFileSync(file, 'utf8'), port, out);
      read = true;
    } catch {
      // no such table (IPv6 off, not Linux)
    }
  }
  return read ? out : undefined;
}
