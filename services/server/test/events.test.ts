import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect as natsConnect, type NatsConnection } from 'nats';
import {
  ControlBus,
  controlEvent,
  decodeControlEvent,
  InvalidEventError,
  NoopBus,
  subjectFor,
  subjects,
  type AdminEvent,
  type ControlBusOptions,
  type ControlEvent,
  type ControlEventType,
} from '../src/cluster/events.js';
import { startNats, stopAllServices, type ServiceHandle } from './support/services.js';

const buses: ControlBus[] = [];
const rawConnections: NatsConnection[] = [];

/** A bus with test-friendly timings; every call site records what the callbacks saw. */
async function bus(url: string, name: string, extra: Partial<ControlBusOptions> = {}) {
  const status: boolean[] = [];
  const invalid: { subject: string; err: unknown }[] = [];
  const errors: { err: unknown; context: string }[] = [];
  const b = await ControlBus.connect(url, {
    name,
    reconnectWaitMs: 100,
    initialWaitMs: 5000,
    onStatus: (c) => status.push(c),
    onInvalid: (subject, err) => invalid.push({ subject, err }),
    onError: (err, context) => errors.push({ err, context }),
    ...extra,
  });
  buses.push(b);
  return { bus: b, status, invalid, errors };
}

/** Polls `cond` every 10 ms; fails after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const KEY = 'live/cam1';
const samples: ControlEvent[] = [
  controlEvent('stream.published', {
    key: KEY,
    app: 'live',
    name: 'cam1',
    nodeId: 'origin-1',
    addr: '10.0.0.1:1935',
    epoch: 7,
  }),
  controlEvent('stream.unpublished', { key: KEY, nodeId: 'origin-1', epoch: 7 }),
  controlEvent('stream.moved', {
    key: KEY,
    fromNodeId: 'origin-1',
    nodeId: 'origin-2',
    addr: '10.0.0.2:1935',
    epoch: 8,
  }),
  controlEvent('stream.moved', { key: KEY, nodeId: 'origin-3', addr: '10.0.0.3:1935', epoch: 9 }),
  controlEvent('node.up', {
    nodeId: 'edge-1',
    role: 'edge',
    rtmpAddr: '10.0.1.1:1935',
    httpAddr: '10.0.1.1:8080',
    version: '0.1.0',
  }),
  controlEvent('node.down', { nodeId: 'edge-1', role: 'edge', rtmpAddr: '10.0.1.1:1935', httpAddr: '10.0.1.1:8080' }),
  controlEvent('node.load', {
    nodeId: 'origin-1',
    role: 'origin',
    rtmpAddr: '10.0.0.1:1935',
    httpAddr: '10.0.0.1:8080',
    version: '0.1.0',
    load: { viewers: 1200, streams: 3, publishers: 3, egressBps: 3.18e9 },
  }),
  controlEvent('admin.kick_publisher', { key: KEY, target: 'origin-1', reason: 'abuse', from: 'ops' }),
  controlEvent('admin.kick_viewer', { key: KEY, target: 'edge-1', sessionId: 'c42' }),
  controlEvent('admin.drop_stream', { key: KEY, reason: 'takedown' }),
  controlEvent('admin.release_stream', { key: KEY, target: 'origin-1', from: 'origin-2', reason: 'takeover' }),
  controlEvent('stream.moving', { key: KEY, fromNodeId: 'origin-3', addr: '10.0.0.2:1935', epoch: 9 }),
  controlEvent('stream.standby', { key: KEY, fromNodeId: 'origin-3', nodeId: 'edge-1', epoch: 9, ready: true }),
];

after(async () => {
  await Promise.all(buses.map((b) => b.close()));
  await Promise.all(rawConnections.map((nc) => nc.close().catch(() => undefined)));
  await stopAllServices();
});

describe('control events: subjects and decoding (no server)', () => {
  it('maps every event to its documented subject', () => {
    const expected = [
      'rtmp.v1.stream.published',
      'rtmp.v1.stream.unpublished',
      'rtmp.v1.stream.moved',
      'rtmp.v1.stream.moved',
      'rtmp.v1.node.up',
      'rtmp.v1.node.down',
      'rtmp.v1.node.load',
      'rtmp.v1.admin.origin-1',
      'rtmp.v1.admin.edge-1',
      'rtmp.v1.admin.all',
      'rtmp.v1.admin.origin-1',
      'rtmp.v1.stream.moving',
      'rtmp.v1.stream.standby',
    ];
    assert.deepEqual(
      samples.map((e) => subjectFor(e)),
      expected,
    );
    assert.equal(subjectFor(samples[0]!, 'acme.prod'), 'acme.prod.v1.stream.published');
    assert.equal(subjects('x').adminAny, 'x.v1.admin.>');
    assert.equal(subjects().admin('edge.eu-1'), 'rtmp.v1.admin.edge.eu-1');
  });

  it('rejects node ids and prefixes that are not usable in a subject', () => {
    for (const bad of ['all', 'a b', 'a.*', 'x.>', 'a..b', '.a', '']) {
      assert.throws(() => subjects().admin(bad), TypeError, bad);
    }
    assert.throws(() => subjects('rtmp.*'), TypeError);
    assert.throws(() => subjectFor(samples[0]!, ''), TypeError);
  });

  it('builds events with v, type and at', () => {
    const before = Date.now();
    const e = controlEvent('stream.unpublished', { key: KEY, nodeId: 'o', epoch: 1 });
    assert.equal(e.v, 1);
    assert.equal(e.type, 'stream.unpublished');
    assert.ok(e.at >= before && e.at <= Date.now());
    assert.equal(controlEvent('node.down', { nodeId: 'n', role: 'edge', rtmpAddr: 'a', httpAddr: 'b', at: 5 }).at, 5);
  });

  it('classifies invalid payloads', () => {
    const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
    const reason = (subject: string, v: unknown) => {
      const r = decodeControlEvent(subject, enc(v));
      assert.equal(r.ok, false);
      return r.ok ? undefined : r.error.reason;
    };
    const good = samples[0]!;
    assert.equal(reason('rtmp.v1.stream.published', '{nope'), 'json');
    assert.equal(reason('rtmp.v1.stream.published', [1]), 'schema');
    assert.equal(reason('rtmp.v1.stream.published', { ...good, v: 2 }), 'version');
    assert.equal(reason('rtmp.v1.stream.published', { ...good, v: undefined }), 'version');
    assert.equal(reason('rtmp.v1.stream.published', { ...good, epoch: -1 }), 'schema');
    assert.equal(reason('rtmp.v1.stream.published', { ...good, type: 'stream.exploded' }), 'schema');
    assert.equal(reason('rtmp.v1.stream.unpublished', good), 'subject');
    assert.equal(
      reason('rtmp.v1.admin.all', { ...samples.find((e) => e.type === 'admin.kick_publisher')!, target: 'all' }),
      'schema',
    );
    const ok = decodeControlEvent('rtmp.v1.stream.published', enc({ ...good, extra: 'ignored' }));
    assert.ok(ok.ok);
    assert.deepEqual(ok.event, good, 'unknown fields are stripped');
  });

  it('NoopBus accepts everything and delivers nothing', async () => {
    const b = new NoopBus();
    assert.equal(b.connected, false);
    assert.equal(b.publish(samples[0]!), false);
    assert.equal(b.stats.dropped, 1);
    b.on('stream.published', () => assert.fail('no delivery'))();
    b.onAdmin('n1', () => assert.fail('no delivery'))();
    await b.flush();
    await b.close();
  });
});

describe('control events over a real nats-server', () => {
  let nats: ServiceHandle;
  before(async () => {
    nats = await startNats();
  });

  it('round-trips every event type between two buses', { timeout: 20_000 }, async () => {
    const a = await bus(nats.url, 'node-a');
    const b = await bus(nats.url, 'node-b');
    assert.equal(a.bus.connected, true);
    assert.equal(b.bus.connected, true);
    assert.deepEqual(a.status, [true]);

    const got = new Map<ControlEventType, { event: ControlEvent; subject: string }[]>();
    const offs = [...new Set(samples.map((e) => e.type))].map((type) =>
      b.bus.on(type, (event, subject) => {
        const list = got.get(type) ?? [];
        list.push({ event, subject });
        got.set(type, list);
      }),
    );
    await b.bus.flush();
    for (const e of samples) assert.equal(a.bus.publish(e), true, e.type);
    await until(() => [...got.values()].reduce((n, l) => n + l.length, 0) >= samples.length, 'every event');
    for (const type of new Set(samples.map((e) => e.type))) {
      const sent = samples.filter((e) => e.type === type);
      assert.deepEqual(
        got.get(type),
        sent.map((event) => ({ event, subject: subjectFor(event) })),
        type,
      );
    }
    assert.equal(a.bus.stats.published, samples.length);
    assert.equal(b.bus.stats.invalid, 0);
    assert.deepEqual(b.invalid, []);
    assert.deepEqual(b.errors, []);

    // Unsubscribed handlers get nothing more; a bus with another prefix is a separate namespace.
    for (const off of offs) off();
    const other = await bus(nats.url, 'node-other', { prefix: 'acme.prod' });
    const seen: ControlEvent[] = [];
    const offOther = other.bus.on('stream.published', (e) => {
      seen.push(e);
    });
    await other.bus.flush();
    a.bus.publish(samples[0]!);
    const mine = controlEvent('stream.published', {
      ...(samples[0] as Extract<ControlEvent, { type: 'stream.published' }>),
      epoch: 99,
    });
    other.bus.publish(mine);
    await until(() => seen.length >= 1, 'own-prefix event');
    await a.bus.flush();
    await other.bus.flush();
    assert.deepEqual(seen, [mine]);
    assert.equal(got.get('stream.published')!.length, 1, 'no delivery after unsubscribe');
    offOther();
  });

  it('routes admin commands: own subject and .all, never another node', { timeout: 20_000 }, async () => {
    const sender = await bus(nats.url, 'ops');
    const nodes = ['origin-1', 'origin-2', 'edge.eu-1'];
    const inbox = new Map<string, { event: AdminEvent; subject: string }[]>();
    for (const id of nodes) {
      const b = await bus(nats.url, id);
      inbox.set(id, []);
      b.bus.onAdmin(id, (event, subject) => {
        inbox.get(id)!.push({ event, subject });
      });
      await b.bus.flush();
    }
    const monitor = await bus(nats.url, 'monitor');
    const monitored: string[] = [];
    for (const type of [
      'admin.kick_publisher',
      'admin.kick_viewer',
      'admin.drop_stream',
      'admin.release_stream',
    ] as const) {
      monitor.bus.on(type, (_e, subject) => {
        monitored.push(subject);
      });
    }
    await monitor.bus.flush();

    const toO1 = controlEvent('admin.kick_publisher', { key: KEY, target: 'origin-1', from: 'ops' });
    const toO2 = controlEvent('admin.release_stream', { key: KEY, target: 'origin-2', from: 'origin-1' });
    const toEdge = controlEvent('admin.kick_viewer', { key: KEY, target: 'edge.eu-1', sessionId: 's1' });
    const toAll = controlEvent('admin.drop_stream', { key: KEY, reason: 'takedown' });
    // NATS keeps one publisher's order, so each node's last expected message marks the end of its delivery.
    const endAll = controlEvent('admin.drop_stream', { key: 'live/end', reason: 'end' });
    for (const e of [toO1, toO2, toEdge, toAll, endAll]) assert.equal(sender.bus.publish(e), true);

    for (const id of nodes)
      await until(() => inbox.get(id)!.some((m) => m.event.key === 'live/end'), `end marker at ${id}`);
    const keysOf = (id: string) => inbox.get(id)!.map((m) => m.event);
    assert.deepEqual(keysOf('origin-1'), [toO1, toAll, endAll]);
    assert.deepEqual(keysOf('origin-2'), [toO2, toAll, endAll]);
    assert.deepEqual(keysOf('edge.eu-1'), [toEdge, toAll, endAll]);
    assert.deepEqual(
      inbox.get('edge.eu-1')!.map((m) => m.subject),
      ['rtmp.v1.admin.edge.eu-1', 'rtmp.v1.admin.all', 'rtmp.v1.admin.all'],
    );
    await until(() => monitored.length >= 5, 'monitor sees every admin command');
    assert.deepEqual(monitored, [
      'rtmp.v1.admin.origin-1',
      'rtmp.v1.admin.origin-2',
      'rtmp.v1.admin.edge.eu-1',
      'rtmp.v1.admin.all',
      'rtmp.v1.admin.all',
    ]);
    assert.throws(() => sender.bus.onAdmin('all', () => undefined), TypeError);
  });

  it('ignores malformed, wrong-version and misrouted messages and reports them', { timeout: 20_000 }, async () => {
    const b = await bus(nats.url, 'node-b');
    const delivered: ControlEvent[] = [];
    b.bus.on('stream.published', (e) => {
      delivered.push(e);
    });
    b.bus.on('stream.unpublished', (e) => {
      delivered.push(e);
    });
    b.bus.onAdmin('node-b', (e) => {
      delivered.push(e);
    });
    await b.bus.flush();

    const raw = await natsConnect({ servers: nats.url, name: 'raw' });
    rawConnections.push(raw);
    const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
    const good = samples[0]!;
    const sent: [string, Uint8Array][] = [
      ['rtmp.v1.stream.published', enc('{"v":1,"type":"stream.pub')],
      ['rtmp.v1.stream.published', new Uint8Array([0xff, 0xfe, 0x00])],
      ['rtmp.v1.stream.published', enc({ ...good, v: 2 })],
      ['rtmp.v1.stream.published', enc({ ...good, key: undefined })],
      ['rtmp.v1.stream.unpublished', enc(good)],
      ['rtmp.v1.admin.all', enc(controlEvent('admin.kick_publisher', { key: KEY, target: 'node-x' }))],
      ['rtmp.v1.admin.node-b', enc({ v: 1, type: 'admin.self_destruct', key: KEY, at: 1 })],
      ['rtmp.v1.stream.published', enc('null')],
    ];
    for (const [subject, data] of sent) raw.publish(subject, data);
    const marker = controlEvent('stream.unpublished', { key: 'live/marker', nodeId: 'o', epoch: 1 });
    raw.publish('rtmp.v1.stream.unpublished', enc(marker));

    await until(() => delivered.length >= 1, 'the valid marker after the invalid messages');
    assert.deepEqual(delivered, [marker]);
    assert.equal(b.bus.stats.invalid, sent.length);
    assert.deepEqual(
      b.invalid.map((i) => [i.subject, i.err instanceof InvalidEventError ? i.err.reason : String(i.err)]),
      [
        ['rtmp.v1.stream.published', 'json'],
        ['rtmp.v1.stream.published', 'json'],
        ['rtmp.v1.stream.published', 'version'],
        ['rtmp.v1.stream.published', 'schema'],
        ['rtmp.v1.stream.unpublished', 'subject'],
        ['rtmp.v1.admin.all', 'subject'],
        ['rtmp.v1.admin.node-b', 'schema'],
        ['rtmp.v1.stream.published', 'schema'],
      ],
    );
    assert.equal(b.bus.connected, true, 'the bus survives garbage');
  });

  it('keeps delivering when a handler throws or rejects, and reports it', { timeout: 20_000 }, async () => {
    const a = await bus(nats.url, 'node-a');
    const b = await bus(nats.url, 'node-b');
    const got: number[] = [];
    b.bus.on('stream.unpublished', (e) => {
      if (e.epoch === 1) throw new Error('boom');
    });
    b.bus.on('stream.unpublished', async (e) => {
      if (e.epoch === 2) throw new Error('async boom');
    });
    b.bus.on('stream.unpublished', (e) => {
      got.push(e.epoch);
    });
    await b.bus.flush();
    for (const epoch of [1, 2, 3]) a.bus.publish(controlEvent('stream.unpublished', { key: KEY, nodeId: 'o', epoch }));
    await until(() => got.length >= 3 && b.bus.stats.handlerErrors >= 2, 'all three events and two handler errors');
    assert.deepEqual(got, [1, 2, 3]);
    assert.deepEqual(
      b.errors.map((e) => [e.context, (e.err as Error).message]),
      [
        ['handler', 'boom'],
        ['handler', 'async boom'],
      ],
    );
  });

  it('rejects an invalid outgoing event without throwing', async () => {
    const a = await bus(nats.url, 'node-a');
    const bad = { ...samples[0]!, epoch: -5 } as ControlEvent;
    assert.equal(a.bus.publish(bad), false);
    assert.equal(a.bus.stats.rejected, 1);
    assert.equal(a.errors[0]?.context, 'publish');
    const badTarget = controlEvent('admin.drop_stream', { key: KEY, target: 'a b' });
    assert.equal(a.bus.publish(badTarget), false);
    assert.equal(a.bus.stats.rejected, 2);
  });
});

describe('control bus connection state', () => {
  it(
    'flips connected/onStatus on a server crash and restart, drops while down, delivers after',
    { timeout: 30_000 },
    async () => {
      const nats = await startNats();
      const p = await bus(nats.url, 'publisher');
      const s = await bus(nats.url, 'subscriber');
      const got: ControlEvent[] = [];
      s.bus.on('stream.moved', (e) => {
        got.push(e);
      });
      await s.bus.flush();
      assert.deepEqual([p.status, s.status], [[true], [true]]);

      await nats.kill();
      await until(() => !p.bus.connected && !s.bus.connected, 'both buses to see the server gone');
      assert.deepEqual(
        [p.status, s.status],
        [
          [true, false],
          [true, false],
        ],
      );

      const whileDown = controlEvent('stream.moved', { key: KEY, nodeId: 'o2', addr: 'h:1', epoch: 1 });
      const dropped = p.bus.stats.dropped;
      assert.equal(p.bus.publish(whileDown), false);
      assert.equal(p.bus.stats.dropped, dropped + 1);
      await assert.rejects(p.bus.flush(), /not connected/);

      await nats.restart();
      await until(() => p.bus.connected && s.bus.connected, 'both buses to reconnect', 10_000);
      assert.deepEqual(
        [p.status, s.status],
        [
          [true, false, true],
          [true, false, true],
        ],
      );

      // The subscription is re-sent by the client on reconnect; flush proves the server has it.
      await s.bus.flush();
      const afterEvent = controlEvent('stream.moved', { key: KEY, nodeId: 'o3', addr: 'h:2', epoch: 2 });
      assert.equal(p.bus.publish(afterEvent), true);
      await until(() => got.length >= 1, 'the event published after the reconnect');
      await p.bus.flush();
      await s.bus.flush();
      assert.deepEqual(got, [afterEvent], 'delivered once, and the event dropped while down never arrives');
    },
  );

  it('starts while NATS is down and connects (with its handlers) when it comes up', { timeout: 30_000 }, async () => {
    const nats = await startNats();
    await nats.kill();
    const started = Date.now();
    const s = await bus(nats.url, 'early', { initialWaitMs: 200 });
    assert.ok(Date.now() - started < 3000, 'connect() does not wait for NATS');
    assert.equal(s.bus.connected, false);
    assert.deepEqual(s.status, []);
    const got: ControlEvent[] = [];
    s.bus.on('node.up', (e) => {
      got.push(e);
    });
    assert.equal(s.bus.publish(samples[4]!), false, 'dropped while never connected');
    assert.equal(s.errors.filter((e) => e.context === 'connect').length, 1, 'one report per outage');

    await nats.restart();
    await until(() => s.bus.connected, 'first connection', 10_000);
    assert.deepEqual(s.status, [true]);
    await s.bus.flush();
    const p = await bus(nats.url, 'late');
    assert.equal(p.bus.publish(samples[4]!), true);
    await until(() => got.length >= 1, 'delivery to a handler registered before the first connection');
    assert.deepEqual(got, [samples[4]]);
  });

  it('closes promptly, even while disconnected, and never throws afterwards', { timeout: 20_000 }, async () => {
    const nats = await startNats();
    const up = await bus(nats.url, 'up');
    await nats.kill();
    const down = await bus(nats.url, 'down', { initialWaitMs: 100 });
    await until(() => !up.bus.connected, 'disconnect');
    for (const b of [up.bus, down.bus]) {
      const t0 = Date.now();
      await b.close();
      assert.ok(Date.now() - t0 < 3000, `close took ${Date.now() - t0} ms`);
      assert.equal(b.connected, false);
      assert.equal(b.publish(samples[0]!), false);
      await b.close(); // idempotent
    }
    assert.deepEqual(up.status, [true, false]);
    assert.deepEqual(down.status, []);
  });
});
