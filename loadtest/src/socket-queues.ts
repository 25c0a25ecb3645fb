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
import { readFile } from 'node:fs/promises';

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
const PORT_HEX_DIGITS = 4;
/** After the remote address: ` st tx_queue:rx_queue` (2, then 8 + 8 hex digits; the kernel's fixed widths). */
const STATE_AT = 1;
const TX_AT = 4;
const RX_AT = 13;
const QUEUE_HEX_DIGITS = 8;

/**
 * Adds one /proc/net/tcp* table's sockets on `port` to `into`. With 3000 viewers the table has 6000 rows and is
 * read every second: rows are read in place by the kernel's fixed field widths (no split into lines or fields),
 * since splitting and a regular expression per row took about 30 ms of the generator's main thread per sample.
 */
export function addQueues(table: string, port: number, into: QueueSample): void {
  const hex = (from: number, digits: number): number => parseInt(table.slice(from, from + digits), 16);
  // Row 0 is the column header.
  for (let row = table.indexOf('\n') + 1; row > 0 && row < table.length;) {
    const next = table.indexOf('\n', row);
    const end = next < 0 ? table.length : next;
    // `  sl: local_address rem_address st tx_queue:rx_queue ...`; both addresses end in `:PPPP`.
    const local = table.indexOf(': ', row) + 2;
    const localEnd = table.indexOf(' ', local);
    const remoteEnd = table.indexOf(' ', localEnd + 1);
    row = end + 1;
    if (local < 2 || localEnd < 0 || remoteEnd < 0 || remoteEnd + RX_AT + QUEUE_HEX_DIGITS > end) continue;
    if (table.slice(remoteEnd + STATE_AT, remoteEnd + STATE_AT + 2) !== TCP_ESTABLISHED) continue;
    if (hex(localEnd - PORT_HEX_DIGITS, PORT_HEX_DIGITS) === port) {
      const tx = hex(remoteEnd + TX_AT, QUEUE_HEX_DIGITS);
      into.serverSockets++;
      into.serverSendBytes += tx;
      if (tx > into.serverSendMaxBytes) into.serverSendMaxBytes = tx;
    } else if (hex(remoteEnd - PORT_HEX_DIGITS, PORT_HEX_DIGITS) === port) {
      const rx = hex(remoteEnd + RX_AT, QUEUE_HEX_DIGITS);
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

/**
 * One sample of the queues on the server's TCP port (loopback, both address families); undefined off Linux. Read
 * asynchronously: the kernel takes about 20 ms to produce a 6000-row table, which must not stall the load
 * generator's main thread (it runs the publisher, and its event-loop delay decides whether a run is valid).
 */
export async function sampleQueues(port: number): Promise<QueueSample | undefined> {
  const out = emptyQueueSample();
  let read = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      addQueues(await readFile(file, 'utf8'), port, out);
      read = true;
    } catch {
      // no such table (IPv6 off, not Linux)
    }
  }
  return read ? out : undefined;
}
