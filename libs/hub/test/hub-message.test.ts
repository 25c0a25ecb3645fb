import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageType, encodeMessageChunks } from '@rtmp-relay/rtmp';
import { CSID_HUB_VIDEO, createHubMessage, payloadOf } from '../src/index.js';

describe('HubMessage memory: a media frame keeps only its chunks', () => {
  const avcKey = Buffer.concat([Buffer.from([0x17, 0x01, 0, 0, 0]), Buffer.alloc(5000, 7)]);
  const avcHeader = Buffer.from([0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff, 1]);

  it('frames drop their payload (rebuilt on demand, byte-exact); headers and data keep theirs', () => {
    const frame = createHubMessage('video', MessageType.Video, 0x1234_5678, avcKey, 4096);
    assert.equal(frame.keptPayload, undefined);
    assert.equal(frame.payloadLength, avcKey.length);
    const expected = { type: MessageType.Video, streamId: 1, timestamp: 0x1234_5678, payload: avcKey };
    assert.deepEqual(frame.chunks, encodeMessageChunks(expected, CSID_HUB_VIDEO, 4096));
    assert.ok(payloadOf(frame).equals(avcKey), 'rebuilt across chunks with an extended timestamp');
    const publisherPayload = Buffer.from(avcKey);
    const held = createHubMessage('video', MessageType.Video, 0, publisherPayload, 4096);
    publisherPayload.fill(0); // the reader's buffer is reused: the frame must not depend on it
    assert.ok(payloadOf(held).equals(avcKey), 'the frame holds its own bytes, not the publisher payload');
    const header = createHubMessage('video', MessageType.Video, 0, avcHeader, 4096);
    assert.equal(header.keptPayload, avcHeader);
    assert.equal(payloadOf(header), avcHeader, 'kept: no copy');
    const metadata = Buffer.from([2, 0, 1, 0x41]);
    assert.equal(createHubMessage('data', MessageType.DataAmf0, 0, metadata, 4096).keptPayload, metadata);
    const aac = Buffer.from([0xaf, 0x01, 1, 2, 3]);
    assert.equal(createHubMessage('audio', MessageType.Audio, 0, aac, 128).keptPayload, undefined);
  });
});
