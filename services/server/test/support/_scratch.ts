import { startTestNode, waitLive } from './node-under-test.js';
import { ffmpegPublish } from './media-tools.js';
import { stopAll } from './processes.js';
import { RawRtmpPeer, controlU32 } from './raw-rtmp.js';
import { MessageType } from '@rtmp-relay/rtmp';

const node = await startTestNode({ VIEWER_SOFT_BACKLOG_BYTES: '32768', VIEWER_HARD_BACKLOG_BYTES: '131072', VIEWER_SOFT_BACKLOG_MS: '500', VIEWER_HARD_BACKLOG_MS: '1500', IDLE_TIMEOUT_MS: '4000', PING_INTERVAL_MS: '1000' });
const pub = ffmpegPublish(node.rtmpUrl('live/main'), { seconds: 60 });
await waitLive(node, 'live/main');
const t0 = performance.now();
const p = await RawRtmpPeer.openReady(node.rtmpPort);
await p.connectApp('live', node.rtmpPort);
p.sendCommand(0, 'createStream', 2, null);
const r = await p.waitCommand((c) => c.transactionId === 2);
const sid = r.args[1] as number;
p.sendCommand(sid, 'play', 0, null, 'main', -1000);
await p.waitCommand((c) => c.name === 'onStatus');
p.stopReading();
const t1 = performance.now();
const keep = setInterval(() => p.sendMessage(controlU32(MessageType.Acknowledgement, 1), 2), 500);
for (let i = 0; i < 60; i++) {
  await new Promise((r) => setTimeout(r, 500));
  const slow = await node.metric('rtmp_slow_viewers_disconnected_total');
  const txt = await (await node.http('/metrics')).text();
  console.log(((performance.now() - t1) / 1000).toFixed(1), 'slow', slow, 'bytesOut', /rtmp_bytes_out_total (\S+)/.exec(txt)?.[1], 'recv', p.bytesReceived, 'closed', p.closed, p.error?.message);
  if (slow > 0) break;
}
clearInterval(keep);
p.resumeReading();
console.log(await p.waitClosed(3000, performance.now()));
await pub.stop();
await stopAll();
await node.shutdown('x');
