/**
 * Publish/play authorization, composed into the role policies (StreamPolicy.beforePublish/beforePlay).
 *
 * Publish: the signed token when publish secrets are configured (denied on failure), then the `on_publish` hook
 *          when configured.
 * Play:    the signed token when `requirePlayToken` (local and cheap: no hook per viewer, `on_play` is not called),
 *          else the `on_play` hook when configured, else allow.
 * Done:    `on_publish_done` / `on_play_done`, fire-and-forget.
 * With nothing configured, everything is allowed without any I/O.
 *
 * Denials are `{ allow: false, status: 'Denied', reason, description }`; descriptions are short and fixed: they
 * never contain the stream name, key, token or query (in key-as-name setups the name is the credential), and
 * avoid the `authmod=`/`code=403` strings that make clients start Adobe auth retries.
 */
import type { PlayDecision, PublishDecision, StreamRequest } from '../streams/types.js';
import { DEFAULT_CLOCK_SKEW_SECONDS, TokenVerifier, type TokenFailure } from './tokens.js';
import {
  WebhookClient,
  type HookDenyReason,
  type HookLogger,
  type HookObservation,
  type HookSettings,
} from './webhooks.js';

export type AuthDenyReason = TokenFailure | HookDenyReason;
export type AuthAction = 'publish' | 'play';

export interface AuthObserver {
  /** Every hook call (blocking and notify): latency and outcome. */
  onHook?(o: HookObservation): void;
  /** Every denial, by action and reason. */
  onDenied?(d: { action: AuthAction; reason: AuthDenyReason }): void;
}

export interface AuthorizerOptions {
  /** Publish token secrets per app; a publish needs a valid token when any publish secret is configured. */
  publishSecrets?: Record<string, string>;
  defaultPublishSecret?: string;
  /** Play token secrets per app; checked only when `requirePlayToken`. */
  playSecrets?: Record<string, string>;
  defaultPlaySecret?: string;
  requirePlayToken: boolean;
  /** Seconds a token is still accepted after `expires` (default 30). */
  clockSkewSeconds?: number;
  hooks?: HookSettings;
  nodeId: string;
  observer?: AuthObserver;
  /** Warnings about failing hooks (a pino logger fits). */
  log?: HookLogger;
  /** Clock in ms (tests). */
  now?: () => number;
}

const DESCRIPTIONS: Record<AuthAction, Record<AuthDenyReason, string>> = {
  publish: {
    token_missing: 'Publish denied: token required.',
    token_invalid: 'Publish denied: invalid token.',
    token_expired: 'Publish denied: token expired.',
    hook_denied: 'Publish denied.',
    hook_failed: 'Publish denied: authorization unavailable.',
    hook_timeout: 'Publish denied: authorization unavailable.',
  },
  play: {
    token_missing: 'Play denied: token required.',
    token_invalid: 'Play denied: invalid token.',
    token_expired: 'Play denied: token expired.',
    hook_denied: 'Play denied.',
    hook_failed: 'Play denied: authorization unavailable.',
    hook_timeout: 'Play denied: authorization unavailable.',
  },
};

const ALLOW = Object.freeze({ allow: true as const });
const ALLOWED: Promise<{ allow: true }> = Promise.resolve(ALLOW);

export class Authorizer {
  private readonly publishTokens: TokenVerifier;
  private readonly playTokens: TokenVerifier;
  private readonly requirePlayToken: boolean;
  private readonly hooks: WebhookClient | undefined;
  private readonly observer: AuthObserver | undefined;

  constructor(opts: AuthorizerOptions) {
    const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    const now = opts.now ?? Date.now;
    const pubSet = {
      ...(opts.publishSecrets && { secrets: opts.publishSecrets }),
      ...(opts.defaultPublishSecret !== undefined && { defaultSecret: opts.defaultPublishSecret }),
    };
    const playSet = {
      ...(opts.playSecrets && { secrets: opts.playSecrets }),
      ...(opts.defaultPlaySecret !== undefined && { defaultSecret: opts.defaultPlaySecret }),
    };
    this.publishTokens = new TokenVerifier('publish', pubSet, skew, now);
    this.playTokens = new TokenVerifier('play', playSet, skew, now);
    this.requirePlayToken = opts.requirePlayToken;
    if (this.requirePlayToken && !this.playTokens.configured) {
      throw new TypeError('requirePlayToken needs playSecrets or defaultPlaySecret (every play would be denied)');
    }
    this.observer = opts.observer;
    const hooks = opts.hooks;
    if (hooks && (hooks.onPublish || hooks.onPlay || hooks.onPublishDone || hooks.onPlayDone)) {
      this.hooks = new WebhookClient({
        ...hooks,
        nodeId: opts.nodeId,
        observer: (o) => this.observer?.onHook?.(o),
        ...(opts.log && { log: opts.log }),
      });
    }
  }

  async authorizePublish(req: StreamRequest): Promise<PublishDecision> {
    if (this.publishTokens.configured) {
      const r = this.publishTokens.verify(req.app, req.name, req.query);
      if (!r.ok) return this.deny('publish', r.reason);
    }
    if (this.hooks?.has('on_publish')) {
      const v = await this.hooks.call('on_publish', req);
      if (!v.allow) return this.deny('publish', v.reason);
    }
    return ALLOW;
  }

  authorizePlay(req: StreamRequest): Promise<PlayDecision> {
    if (this.requirePlayToken) {
      const r = this.playTokens.verify(req.app, req.name, req.query);
      return r.ok ? ALLOWED : Promise.resolve(this.deny('play', r.reason));
    }
    if (this.hooks?.has('on_play')) {
      return this.hooks.call('on_play', req).then((v) => (v.allow ? ALLOW : this.deny('play', v.reason)));
    }
    return ALLOWED;
  }

  /** The publisher left: `on_publish_done`, fire-and-forget. */
  publishDone(req: StreamRequest): void {
    this.hooks?.notify('on_publish_done', req);
  }

  /** A viewer left: `on_play_done`, fire-and-forget. */
  playDone(req: StreamRequest): void {
    this.hooks?.notify('on_play_done', req);
  }

  /** Resolves when every done-hook started so far has finished (graceful shutdown). */
  async idle(): Promise<void> {
    await this.hooks?.idle();
  }

  private deny(
    action: AuthAction,
    reason: AuthDenyReason,
  ): { allow: false; status: 'Denied'; reason: string; description: string } {
    try {
      this.observer?.onDenied?.({ action, reason });
    } catch {
      // metrics must never break authorization
    }
    return { allow: false, status: 'Denied', reason, description: DESCRIPTIONS[action][reason] };
  }
}
