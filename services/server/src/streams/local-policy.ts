import type { PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from './types.js';

/** The standalone node: publishes are local; a play waits `playWaitMs` for a local publisher. */
export class LocalStreamPolicy implements StreamPolicy {
  constructor(
    private readonly waitForLive: (key: string, timeoutMs: number) => Promise<boolean>,
    private readonly playWaitMs: number,
  ) {}

  async beforePublish(): Promise<PublishDecision> {
    return { allow: true };
  }

  published(): void {}
  unpublished(): void {}

  async beforePlay(req: StreamRequest): Promise<PlayDecision> {
    const live = await this.waitForLive(req.key, this.playWaitMs);
    return live
      ? { allow: true }
      : { allow: false, status: 'StreamNotFound', reason: 'not_found', description: `${req.name} is not live.` };
  }

  viewerJoined(): void {}
  viewerLeft(): void {}
}
