import type { HubObserver, HubOptions } from './options.js';
import { StreamHub } from './stream-hub.js';

/**
 * The in-memory stream registry of a single node (the standalone default): one hub per stream key, created on
 * first use and removed when it has neither publisher nor viewers. The cluster roles put Redis ownership on top.
 */
export class HubRegistry {
  private readonly hubs = new Map<string, StreamHub>();

  constructor(
    private readonly options: Partial<HubOptions> = {},
    private readonly observer: HubObserver = {},
  ) {}

  get(key: string): StreamHub | undefined {
    return this.hubs.get(key);
  }

  getOrCreate(key: string): StreamHub {
    let hub = this.hubs.get(key);
    if (!hub) {
      hub = new StreamHub(key, this.options, this.observer, (idle) => {
        if (this.hubs.get(idle.key) === idle) this.hubs.delete(idle.key);
      });
      this.hubs.set(key, hub);
    }
    return hub;
  }

  list(): StreamHub[] {
    return [...this.hubs.values()];
  }

  get size(): number {
    return this.hubs.size;
  }

  closeAll(reason: string): void {
    for (const hub of this.list()) hub.close(reason);
  }
}
