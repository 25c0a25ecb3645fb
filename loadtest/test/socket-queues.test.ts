import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createServer, connect, type Socket } from 'node:net';
import { addQueues, emptyQueueSample, sampleQueues } from '../src/socket-queues.js';

// Port 1935 = 0x078F. Rows: server side (local :078F) with 4 KiB queued to send; a viewer (remote :078F) with 2 KiB
// unread; the listening socket (state 0A) and an unrelated connection, both ignored.
const TABLE = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:078F 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:078F 0100007F:D431 01 00001000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:078F 01 00000000:00000800 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:9C40 01 00000400:00000400 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
`;

describe('socket queues from /proc/net/tcp', () => {
  it('sums the server side send queues and the client side receive queues on one port', () => {
    const q = emptyQueueSample();
    addQueues(TABLE, 1935, q);
    assert.deepEqual(q, {
      serverSockets: 1,
      serverSendBytes: 4096,
      serverSendMaxBytes: 4096,
      clientSockets: 1,
      clientReceiveBytes: 2048,
      clientReceiveMaxBytes: 2048,
    });
  });

  it('reads IPv6 rows and row numbers past 9999 (wider fields) the same way', () => {
    const v6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:078F 00000000000000000000000001000000:C350 01 00000200:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
10000: 00000000000000000000000001000000:C350 00000000000000000000000001000000:078F 01 00000000:00000100 00:00000000 00000000     0        0 6 1 0000000000000000 20 4 30 10 -1
10001: 00000000000000000000000001000000:C351 00000000000000000000000001000000:078F 06 00000000:00000900 00:00000000 00000000     0        0 7 1 0000000000000000 20 4 30 10 -1`;
    const q = emptyQueueSample();
    addQueues(v6, 1935, q);
    addQueues(TABLE, 1935, q);
    // The TIME_WAIT row (06) is not counted; the rows of both tables add up; no trailing newline is needed.
    assert.deepEqual(q, {
      serverSockets: 2,
      serverSendBytes: 4096 + 512,
      serverSendMaxBytes: 4096,
      clientSockets: 2,
      clientReceiveBytes: 2048 + 256,
      clientReceiveMaxBytes: 2048,
    });
  });

  it("samples the kernel's live tables: 20 loopback connections with bytes left unread on the client side", async () => {
    const server = createServer((s) => {
      s.on('error', () => undefined); // the clients' destroy with unread bytes resets the connection
      s.write(Buffer.alloc(1000));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const clients: Socket[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const c = connect(port, '127.0.0.1');
        c.pause(); // never read: the 1000 bytes stay in this socket's receive queue
        clients.push(c);
        await new Promise((r) => c.once('connect', r));
      }
      // Bounded: the server's writes reach every receive queue within a few milliseconds on loopback.
      let q = await sampleQueues(port);
      for (let i = 0; i < 100 && q?.clientReceiveBytes !== 20 * 1000; i++) {
        await new Promise((r) => setImmediate(r));
        q = await sampleQueues(port);
      }
      assert.ok(q, 'no /proc/net/tcp on this machine');
      assert.equal(q.serverSockets, 20);
      assert.equal(q.clientSockets, 20);
      assert.equal(q.clientReceiveBytes, 20 * 1000);
      assert.equal(q.clientReceiveMaxBytes, 1000);
      assert.equal(q.serverSendBytes, 0, 'loopback acknowledges what is queued for the reader');
    } finally {
      for (const c of clients) c.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
