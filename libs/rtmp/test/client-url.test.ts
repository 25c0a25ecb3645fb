import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RTMP_PORT, DEFAULT_RTMPS_PORT, parseRtmpUrl } from '../src/client.js';

describe('parseRtmpUrl', () => {
  it('rtmp:// defaults to 1935 and is not secure', () => {
    const u = parseRtmpUrl('rtmp://example.com/live/key?token=1');
    assert.deepEqual(u, {
      host: 'example.com',
      port: DEFAULT_RTMP_PORT,
      app: 'live',
      stream: 'key?token=1',
      tcUrl: 'rtmp://example.com/live',
      secure: false,
    });
  });

  it('rtmps:// defaults to 443, keeps the scheme in tcUrl and is secure', () => {
    const u = parseRtmpUrl('rtmps://example.com/live/key');
    assert.equal(u.port, DEFAULT_RTMPS_PORT);
    assert.equal(u.secure, true);
    assert.equal(u.tcUrl, 'rtmps://example.com/live');
  });

  it('rtmps:// with a port and an IPv6 host', () => {
    const u = parseRtmpUrl('rtmps://[::1]:1936/live/key');
    assert.equal(u.host, '::1');
    assert.equal(u.port, 1936);
    assert.equal(u.tcUrl, 'rtmps://[::1]:1936/live');
  });

  it('rejects other schemes', () => {
    assert.throws(() => parseRtmpUrl('http://example.com/live/key'), /not an rtmp/);
  });
});
