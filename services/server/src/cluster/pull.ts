import type { HubPublisher, StreamHub } from '@rtmp-relay/hub';
import {
  MessageType,
  RtmpClient,
  RtmpClientError,
  RtmpProtocolError,
  type ConnectionLimits,
  type RtmpMessage,
} from '@rtmp-relay/rtmp';
import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { ingest } from '../streams/ingest.js';
import { streamLabel } from '../streams/redact.js';
import { inSpan } from '../tracing.js';

/** Where a stream lives now, as the registry says. */
export interface UpstreamOwner {
  nodeId: string;
  /** host:port of the owner's RTMP listener. */
  addr: string;
  epoch: number;
}

export interface PullDeps {
  /** The registry's owner now (Redis); rejects when Redis is unreachable. */
  resolveOwner(key: string): Promise<UpstreamOwner | undefined>;
  /** Resolves when an event says `key` was (re)published or moved, or after `ms` (a slow safety net), or on abort. */
  waitForOwnerEvent(key: string, ms: number, signal: AbortSignal): Promise<void>;
  /** Query string (e.g. a signed play token) added to the upstream play. */
  playQuery?(app: string, name: string): string;
  observer?: {
    pullStarted?(key: string, attempt: number): void;
    pullFailed?(key: string, reason: string): void;
    pullStopped?(key: string): void;
    /** Re-attached to a different owner than before (failover or takeover). */
    upstreamChanged?(key: string, from: UpstreamOwner, to: UpstreamOwner): void;
    /** The next upstream opened ahead of an announced move, and what became of it. */
    standby?(key: string, outcome: StandbyOutcome): void;
  };
  /**
   * The answer to an announced move of the copy this pull plays (`stream.standby`): `ready` once the next upstream
   * is connected and its play waits there, false when it could not be opened or the pull could not prepare (it is
   * between upstreams). Once per announcement; not for a move of a copy we don't pull.
   */
  answerMove?(key: string, move: AnnouncedMove, ready: boolean): void;
}

/** The close reason of an upstream connection a pull cuts for a newer owner. */
const OWNER_CHANGED = 'owner_changed';

export type StandbyOutcome = 'opened' | 'used' | 'failed' | 'expired' | 'unused' | 'stopped';

/** An announced move (`stream.moving`): the publisher of `fromNodeId`'s copy (epoch `epoch`) was sent to `addr`. */
export interface AnnouncedMove {
  fromNodeId: string;
  addr: string;
  epoch: number;
}

export interface PullOptions {
  /** Keep the pull this long after the last viewer leaves. */
  lingerMs: number;
  connectTimeoutMs: number;
  /** An upstream that sends nothing for this long is considered broken. */
  readTimeoutMs: number;
  /** After the upstream broke (no goodbye), keep viewers attached this long while looking for the new owner. */
  failoverWaitMs: number;
  /** Without an owner in the registry, re-check at least this often even if no event arrives. */
  ownerRecheckMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  /** Connection limits for the upstream (the node's own: message sizes, chunk streams, AMF). */
  limits?: ConnectionLimits;
}

/**
 * Media a connection receives before the pull attaches it is held; past this much the connection is dropped (a
 * standby whose move never comes must not grow without bound: a GOP of a high-bitrate stream is a few MiB).
 */
const HELD_MEDIA_MAX_BYTES = 16 * 1024 * 1024;

/** A standby not taken by a move within this many connect timeouts is closed. */
const STANDBY_TTL_CONNECT_TIMEOUTS = 2;

/** An upstream connection playing the stream; media received so far is held until `flush()`. */
interface OpenedUpstream {
  client: RtmpClient;
  /** Ingests the held media into the hub and lets later media through (call once attached). */
  flush(): void;
}

/** The next upstream, opened ahead of an announced move and taken by the attempt that resolves to its address. */
interface Standby {
  addr: string;
  /** Set once connected (closed at once if the standby was dropped meanwhile). */
  client: RtmpClient | undefined;
  /** An attempt took it (possibly before it connected: under load the move can beat the connection set-up). */
  taken: boolean;
  opened: Promise<OpenedUpstream>;
  timer: NodeJS.Timeout | undefined;
}

class StoppedError extends Error {}
/** Ends the current retry backoff early: an event announced a new owner. */
class WakeError extends Error {}

/** `owner` is a newer claim than `than` (fencing is by epoch; the same epoch elsewhere is a registry repair). */
function isNewerOwner(owner: UpstreamOwner, than: UpstreamOwner | undefined): boolean {
  return !than || owner.epoch > than.epoch || (owner.epoch === than.epoch && owner.addr !== than.addr);
}

/**
 * One RTMP pull of one stream from its owning origin into the local hub, shared by every local viewer.
 * It acts as the hub's publisher. A pull that breaks re-resolves the owner and retries with backoff (never stuck on
 * a dead address); an upstream that ends normally (the publisher stopped) ends the stream for viewers after the
 * hub's grace, unless Redis already names a newer owner (a fenced origin ending its copy: a move, not an end, which
 * matters when NATS is down and no event told us); an upstream that breaks keeps viewers attached for
 * `failoverWaitMs` while the new owner appears.
 *
 * The hub is looked up in the registry at every (re-)attach, never kept from the start: after an upstream end with
 * no viewer left the registry drops the idle hub, and a pull that re-attached to that orphan would be live where no
 * new viewer can see it (plays waiting for the key to go live would time out with StreamNotFound).
 */
export class UpstreamPull implements HubPublisher {
  readonly id: string;
  private refs = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private failoverTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  /** The hub we are (or were last) attached to; see hubFor. */
  private hub: StreamHub | undefined;
  private client: RtmpClient | undefined;
  private current: UpstreamOwner | undefined;
  private attached = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake = new AbortController();
  private inAttempt = false;
  /** Owner the attempt in flight is connecting to, and its connection (cut short when a newer owner appears). */
  private attemptOwner: UpstreamOwner | undefined;
  private attemptClient: RtmpClient | undefined;
  /** The newest owner announced while an attempt was in flight: acted on when the attempt settles, never dropped. */
  private missedOwner: UpstreamOwner | undefined;
  /** The registry's last answer named an owner, and no upstream is attached yet (see seekingKnownOwner). */
  private ownerFound = false;
  /** The next upstream, opened ahead of an announced move (see prepareMove). */
  private standby: Standby | undefined;
  /** A newer owner an event announced while attached: the next attempt's owner (see ownerChanged). */
  private announcedOwner: UpstreamOwner | undefined;

  constructor(
    readonly key: string,
    private readonly app: string,
    private readonly name: string,
    /** The registry's hub for the key (created if the registry dropped it). */
    private readonly hubFor: () => StreamHub,
    private readonly deps: PullDeps,
    private readonly options: PullOptions,
    private readonly log: Logger,
    private readonly onStopped: (pull: UpstreamPull) => void,
  ) {
    this.id = `pull:${key}`;
  }

  get viewers(): number {
    return this.refs;
  }

  get upstream(): UpstreamOwner | undefined {
    return this.current;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * The stream is live somewhere (the registry named its owner) and this pull is still connecting to it or retrying:
   * a play waiting for it should wait out the connect rather than be told the stream does not exist. True in a
   * cold-start storm, when hundreds of first pulls at once take longer than the play wait.
   */
  get seekingKnownOwner(): boolean {
    return !this.stopped && !this.attached && this.ownerFound;
  }

  /** A viewer wants the stream: keep (or start) pulling. */
  acquire(): void {
    if (this.stopped) throw new Error(`pull ${this.key} already stopped`);
    this.refs++;
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.running ??= this.loop();
  }

  /** A viewer left: after the linger with no viewers, stop. */
  release(): void {
    this.refs = Math.max(0, this.refs - 1);
    if (this.refs > 0 || this.stopped) return;
    // Never found an owner: nothing to keep warm. Plays of unknown names must not leave pulls (or hubs) behind.
    if (!this.current && !this.attached) {
      this.stop('no_viewers');
      return;
    }
    clearTimeout(this.lingerTimer);
    this.lingerTimer = setTimeout(() => this.stop('linger_expired'), this.options.lingerMs);
    this.lingerTimer.unref();
  }

  /** An event says the stream has a new owner: drop the current upstream at once if it is older. */
  ownerChanged(owner: UpstreamOwner): void {
    if (this.stopped) return;
    if (!isNewerOwner(owner, this.current)) return;
    this.log.info(
      { stream: streamLabel(this.key), addr: owner.addr, epoch: owner.epoch },
      'upstream owner changed: re-pulling',
    );
    if (this.inAttempt) {
      // Never dropped: remembered, and acted on when the attempt settles (a failed attempt retries at once, a
      // successful one to an older owner is dropped for the newer). p-retry's signal is not aborted here, since that
      // would orphan the connection being opened; a connection to an older owner is cut short instead.
      if (isNewerOwner(owner, this.missedOwner)) this.missedOwner = owner;
      if (this.attemptOwner && isNewerOwner(owner, this.attemptOwner))
        this.attemptClient?.connection.close(OWNER_CHANGED);
      return;
    }
    // The next attempt pulls from the announced owner without asking Redis again: on a busy edge that round trip was
    // most of a prepared move's gap (the standby waits for it). An attempt that fails there resolves as usual.
    this.announcedOwner = owner;
    if (this.client) this.client.connection.close(OWNER_CHANGED);
    else this.wake.abort(new WakeError('owner changed'));
  }

  /**
   * The stream moved between origins, and `upstream` is the parent edge we pull through. When that is the parent we
   * are attached to, it follows the move itself (its hub goes on, see prepareMove) and our connection stays: only the
   * epoch we compare later events with moves on. Re-pulling would cost this leaf's viewers a gap for nothing. Any
   * other parent (or no attached upstream) is an owner change.
   */
  followedByParent(upstream: UpstreamOwner): void {
    const current = this.current;
    if (this.stopped || !current || !this.attached || this.inAttempt || !this.client)
      return this.ownerChanged(upstream);
    if (current.nodeId !== upstream.nodeId || current.addr !== upstream.addr) return this.ownerChanged(upstream);
    if (upstream.epoch > current.epoch) this.current = { ...current, epoch: upstream.epoch };
  }

  /** The hub replaced us (a local publisher took the key) or the node is shutting down. */
  kick(reason: string): void {
    this.attached = false;
    this.stop(reason);
  }

  stop(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.lingerTimer);
    clearTimeout(this.failoverTimer);
    this.abort.abort(new StoppedError(reason));
    this.wake.abort(new StoppedError(reason));
    this.dropStandby('stopped');
    this.client?.close();
    if (this.attached) {
      this.attached = false;
      this.hub?.detachPublisher(this);
    }
    this.log.info({ stream: streamLabel(this.key), reason }, 'pull stopped');
    this.deps.observer?.pullStopped?.(this.key);
    this.onStopped(this);
  }

  /**
   * A drain sent the publisher of our upstream's copy to `move.addr` (E-RTMP ReconnectRequest). Open the next
   * upstream there now: its play waits on that origin until the publisher arrives, and the attempt that follows the
   * move (stream.moved, or the old copy's end) takes it instead of connecting, so viewers' gap is the publisher's
   * switch, not a connection set-up on top of it. Media it receives meanwhile is held (bounded) until then.
   */
  prepareMove(move: AnnouncedMove): void {
    const current = this.current;
    if (this.stopped || !current) return;
    // Only for a move of the copy we pull (a leaf pulling through a parent ignores it), and not a stale one.
    if (current.nodeId !== move.fromNodeId || current.epoch !== move.epoch || current.addr === move.addr) return;
    let answered = false;
    const answer = (ready: boolean): void => {
      if (answered) return;
      answered = true;
      this.deps.answerMove?.(this.key, move, ready);
    };
    // Between upstreams: the attempt under way resolves the new owner itself; the drain need not wait for us.
    if (!this.attached || this.inAttempt) return answer(false);
    if (this.standby?.addr === move.addr) return answer(this.standby.client !== undefined);
    this.dropStandby('unused');
    const standby: Standby = { addr: move.addr, client: undefined, taken: false, opened: undefined!, timer: undefined };
    standby.opened = this.openUpstream(move.addr, (client) => {
      standby.client = client;
      if (standby.taken) {
        // Connected after the attempt took it: that attempt's connection now (a newer owner can cut it short).
        this.attemptClient = client;
        if (this.stopped) throw new AbortError(new StoppedError('stopped'));
        return answer(true);
      }
      if (this.standby !== standby)
        throw new RtmpClientError('closed', 'standby dropped', { reason: 'standby_dropped' });
      // Connected, with createStream and play sent (pipelined): the play now waits there for the publisher.
      answer(true);
    });
    standby.opened.catch(() => {
      answer(false);
      if (this.standby !== standby) return; // taken: the attempt that took it reports the failure
      this.standby = undefined;
      clearTimeout(standby.timer);
      this.deps.observer?.standby?.(this.key, 'failed');
    });
    standby.timer = setTimeout(
      () => this.standby === standby && this.dropStandby('expired'),
      this.options.connectTimeoutMs * STANDBY_TTL_CONNECT_TIMEOUTS,
    );
    standby.timer.unref();
    this.standby = standby;
    this.log.info(
      { stream: streamLabel(this.key), addr: move.addr },
      'stream moving: opening the next upstream ahead of the move',
    );
    this.deps.observer?.standby?.(this.key, 'opened');
  }

  private dropStandby(outcome: StandbyOutcome): void {
    const standby = this.standby;
    if (!standby) return;
    this.standby = undefined;
    clearTimeout(standby.timer);
    standby.client?.close();
    standby.opened.then(
      (opened) => opened.client.close(),
      () => undefined,
    );
    this.deps.observer?.standby?.(this.key, outcome);
  }

  /** The standby, if it was opened to `owner`'s address; one to anywhere else is dropped. */
  private takeStandby(owner: UpstreamOwner): Standby | undefined {
    const standby = this.standby;
    if (!standby) return undefined;
    if (standby.addr !== owner.addr) {
      this.dropStandby('unused');
      return undefined;
    }
    this.standby = undefined;
    standby.taken = true;
    clearTimeout(standby.timer);
    return standby;
  }

  /** Connects to `addr` and starts playing the stream; media is held until the returned `flush()`. */
  private async openUpstream(addr: string, onConnected: (client: RtmpClient) => void): Promise<OpenedUpstream> {
    const query = this.deps.playQuery?.(this.app, this.name) ?? '';
    const playName = `${this.name}${query ? `?${query}` : ''}`;
    const url = `rtmp://${addr}/${this.app}/${playName}`;
    // Play.Start, the metadata and the sequence headers arrive in one read: they are held until the hub has reset
    // its caches for this upstream (attachPublisher), or they would be wiped right after arriving.
    let held: RtmpMessage[] | undefined = [];
    let heldBytes = 0;
    const client = await RtmpClient.connect(url, {
      connectTimeoutMs: this.options.connectTimeoutMs,
      readTimeoutMs: this.options.readTimeoutMs,
      fourCcList: ['*'],
      // Pulled media is held to the same size and AMF limits as published media.
      ...(this.options.limits ? { limits: this.options.limits } : {}),
      // Upstreams are our own nodes: createStream and play go out with connect, two round trips less per cold pull.
      pipelinePlay: { name: playName, timeoutMs: this.options.connectTimeoutMs },
      // Pipelined, media can arrive with connect's reply: listen from the start.
      beforeConnect: (c) =>
        c.on('media', (msg) => {
          if (isSampleAccess(msg)) return; // the edge sends its own to its viewers
          if (held) {
            held.push(msg);
            heldBytes += msg.payload.length;
            if (heldBytes > HELD_MEDIA_MAX_BYTES) c.connection.close('held_media_limit');
          } else if (this.attached && this.client === c && this.hub) ingest(this.hub, msg, c.connection);
        }),
    });
    try {
      onConnected(client);
      await client.play(playName, this.options.connectTimeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return {
      client,
      flush: () => {
        const messages = held ?? [];
        held = undefined;
        if (this.hub) for (const msg of messages) ingest(this.hub, msg, client.connection);
      },
    };
  }

  private async loop(): Promise<void> {
    while (!this.stopped) await this.pullOnce();
  }

  /**
   * One connection's life: connect (retrying), then wait for the upstream to end or break. A method of its own so
   * that nothing of one connection outlives it: an async function suspended in a loop keeps the last value of its
   * locals (V8 saves the frame's registers), which kept one closed connection per pull for as long as the pull lived.
   */
  private async pullOnce(): Promise<void> {
    // A fresh wake per connection, which stop() aborts too: p-retry's signal. Not AbortSignal.any over the pull's
    // long-lived abort signal: each call leaves an entry in that signal's dependant set (Node 20), one per re-pull.
    this.wake = new AbortController();
    try {
      const client = await pRetry(
        (attempt) =>
          inSpan('cluster.pull_start', { 'rtmp.stream': streamLabel(this.key), 'rtmp.attempt': attempt }, () =>
            this.connectOnce(attempt),
          ),
        {
          retries: Number.POSITIVE_INFINITY,
          minTimeout: this.options.retryMinMs,
          maxTimeout: this.options.retryMaxMs,
          factor: 2,
          randomize: true,
          signal: this.wake.signal,
          onFailedAttempt: ({ error }) => {
            if (this.stopped) return;
            this.deps.observer?.pullFailed?.(this.key, reasonOf(error));
            this.log.warn({ stream: streamLabel(this.key), err: error.message }, 'pull attempt failed');
          },
        },
      );
      await this.flow(client, this.current!);
    } catch (err) {
      // Stopped, or woken for a newer owner: the loop ends or starts the next connection.
      const expected =
        this.stopped || err instanceof StoppedError || err instanceof WakeError || this.wake.signal.aborted;
      if (!expected) this.log.error({ stream: streamLabel(this.key), err }, 'pull loop error');
    }
  }

  /** Resolve the owner (waiting for one to appear) and start playing from it. */
  private async connectOnce(attempt: number): Promise<RtmpClient> {
    this.inAttempt = true;
    this.missedOwner = undefined;
    try {
      return await this.attemptOnce(attempt);
    } catch (err) {
      // An owner announced meanwhile: no backoff (p-retry checks the signal before sleeping).
      if (this.missedOwner && !this.stopped) this.wake.abort(new WakeError('owner changed'));
      throw err;
    } finally {
      this.inAttempt = false;
      this.attemptOwner = undefined;
      this.attemptClient = undefined;
    }
  }

  private async attemptOnce(attempt: number): Promise<RtmpClient> {
    if (this.stopped) throw new AbortError(new StoppedError('stopped'));
    let owner = this.announcedOwner ?? (await this.deps.resolveOwner(this.key));
    this.announcedOwner = undefined;
    while (!owner) {
      this.ownerFound = false;
      await this.deps.waitForOwnerEvent(this.key, this.options.ownerRecheckMs, this.abort.signal);
      if (this.stopped) throw new AbortError(new StoppedError('stopped'));
      owner = await this.deps.resolveOwner(this.key);
    }
    this.ownerFound = true;
    this.attemptOwner = owner;
    if (this.missedOwner && !isNewerOwner(this.missedOwner, owner)) this.missedOwner = undefined; // resolved it
    this.deps.observer?.pullStarted?.(this.key, attempt);
    let opened: OpenedUpstream;
    const standby = this.takeStandby(owner);
    try {
      if (standby) {
        // Opened ahead of this move: wait for its play (the publisher arriving there), not for a new connection.
        if (standby.client) this.attemptClient = standby.client;
        opened = await standby.opened.catch((err: unknown) => {
          this.deps.observer?.standby?.(this.key, 'failed');
          throw err;
        });
        this.attemptClient = opened.client;
        this.client = opened.client;
        this.deps.observer?.standby?.(this.key, 'used');
      } else {
        opened = await this.openUpstream(owner.addr, (client) => {
          this.attemptClient = client;
          if (this.stopped) throw new AbortError(new StoppedError('stopped'));
          if (client.closed)
            throw new RtmpClientError('closed', `connection closed: ${OWNER_CHANGED}`, { reason: OWNER_CHANGED });
          this.client = client;
        });
      }
      if (this.stopped) throw new AbortError(new StoppedError('stopped'));
    } catch (err) {
      if (this.client && this.client === this.attemptClient) this.client.close();
      this.client = undefined;
      throw err;
    }
    const client = opened.client;
    const previous = this.current;
    if (previous && (previous.addr !== owner.addr || previous.nodeId !== owner.nodeId))
      this.deps.observer?.upstreamChanged?.(this.key, previous, owner);
    this.current = owner;
    this.log.info(
      { stream: streamLabel(this.key), addr: owner.addr, epoch: owner.epoch, attempt },
      'pulling from origin',
    );
    clearTimeout(this.failoverTimer);
    this.failoverTimer = undefined;
    // (Re-)attaching resets the hub's caches for the new upstream; its timeline continues. The hub is the registry's
    // current one (see the class comment); while we are attached it is never idle, so it stays the same.
    const hub = this.hubFor();
    if (this.attached && this.hub !== hub) this.hub?.detachPublisher(this);
    this.hub = hub;
    hub.attachPublisher(this);
    this.attached = true;
    opened.flush();
    return client;
  }

  /** Waits until the upstream ends (publisher stopped) or breaks, and reacts accordingly. */
  private flow(client: RtmpClient, from: UpstreamOwner): Promise<void> {
    return new Promise((resolve) => {
      let endDecided: Promise<void> | undefined;
      client.once('end', () => {
        // Against the owner this connection started with, even when a parent followed a move since (followedByParent):
        // a newer owner in Redis at the end means the stream lives on there, and a re-pull finds it.
        endDecided = this.afterUpstreamEnd(from).finally(() => client.close());
      });
      const onClose = (reason: string): void => {
        if (this.client === client) this.client = undefined;
        if (!endDecided && !this.stopped) {
          this.log.warn({ stream: streamLabel(this.key), reason }, 'upstream broke: looking for the owner again');
          this.deps.observer?.pullFailed?.(this.key, reason);
          this.armFailoverDeadline();
        }
        // After an end, the next attempt waits for the decision (it must not re-attach while we may detach).
        void (endDecided ?? Promise.resolve()).then(() => resolve());
      };
      if (client.closed) return onClose('closed'); // closed in the same read that started the play
      client.once('close', onClose);
      // A newer owner announced while this attempt was connecting: drop this upstream for it now.
      const missed = this.missedOwner;
      this.missedOwner = undefined;
      if (missed && isNewerOwner(missed, from)) {
        this.log.info(
          { stream: streamLabel(this.key), addr: missed.addr, epoch: missed.epoch },
          'upstream owner changed: re-pulling',
        );
        client.connection.close(OWNER_CHANGED);
      }
    });
  }

  /**
   * The upstream ended (StreamEOF / UnpublishNotify). Redis decides whether that is an end or a move: a fenced or
   * taken-over origin ends its copy too, and with NATS down no event says where the stream went. A newer owner in
   * Redis means a move: viewers stay attached (as in a failover) and the loop re-pulls from it. Otherwise (no owner,
   * the same one, or Redis unreachable) the publisher stopped and the origin already waited its grace: end it now.
   */
  private async afterUpstreamEnd(from: UpstreamOwner): Promise<void> {
    const owner = await this.deps.resolveOwner(this.key).catch(() => undefined);
    if (this.stopped) return;
    if (owner && isNewerOwner(owner, from)) {
      this.log.info(
        { stream: streamLabel(this.key), addr: owner.addr, epoch: owner.epoch },
        'upstream ended but the stream moved to a newer owner: re-pulling',
      );
      this.armFailoverDeadline();
      return;
    }
    if (this.attached) {
      this.attached = false;
      this.hub?.detachPublisher(this, { immediate: true });
    }
  }

  /** Viewers stay attached through a failover, but not forever. */
  private armFailoverDeadline(): void {
    if (this.failoverTimer || !this.attached) return;
    this.failoverTimer = setTimeout(() => {
      this.failoverTimer = undefined;
      if (this.attached && !this.client) {
        this.attached = false;
        this.hub?.detachPublisher(this);
      }
    }, this.options.failoverWaitMs);
    this.failoverTimer.unref();
  }
}

const SAMPLE_ACCESS_PREFIX = Buffer.from('\x02\x00\x11|RtmpSampleAccess', 'latin1');

function isSampleAccess(msg: RtmpMessage): boolean {
  return (
    msg.type === MessageType.DataAmf0 &&
    msg.payload.subarray(0, SAMPLE_ACCESS_PREFIX.length).equals(SAMPLE_ACCESS_PREFIX)
  );
}

/** The metric label of a failed attempt: classified where it was raised (RtmpClientError, RtmpProtocolError). */
function reasonOf(err: Error): string {
  if (err instanceof RtmpClientError) return err.label;
  if (err instanceof RtmpProtocolError) return err.reason;
  return (err as NodeJS.ErrnoException).code?.toLowerCase() ?? 'error';
}
