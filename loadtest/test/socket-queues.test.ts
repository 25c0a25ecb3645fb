import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addQueues, emptyQueueSample } from '../src/socket-queues.js';

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
});
