/**
 * Requests held until the packager has something (a blocking playlist reload's part, a preload-hinted part, the
 * first segment), grouped by what they wait for: at the live edge every viewer waits for the same next part, so
 * one readiness check per packager change and one timer serve them all, and they are answered together.
 *
 * A group takes joiners for GROUP_JOIN_MS after it starts, then a new group (with its own timer) starts for the
 * same condition: a request's timeout is at most GROUP_JOIN_MS short of the one it asked for.
 */

/** Called once: true when the condition held, false at the timeout (or when waiting stopped). */
export type Wake = (ok: boolean) => void;

interface Group {
  key: string;
  ready: () => boolean;
  wakes: Wake[];
  startedAt: number;
  timer: NodeJS.Timeout;
}

/** Joiners share a group (and its timeout) for this long after the group started. */
export const GROUP_JOIN_MS = 100;

export class WaitGroups {
  /** Every waiting group. */
  private readonly groups = new Set<Group>();
  /** The group that takes joiners, per condition. */
  private readonly open = new Map<string, Group>();
  private stopped = false;

  get isEmpty(): boolean {
    return this.groups.size === 0;
  }

  /**
   * Calls `wake(true)` as soon as `ready()` holds (now, or at a later `check()`), `wake(false)` after `timeoutMs`.
   * `key` names the condition: waits with the same key must have the same `ready`.
   */
  wait(key: string, ready: () => boolean, timeoutMs: number, wake: Wake, now = performance.now()): void {
    if (ready()) return wake(true);
    if (this.stopped) return wake(false);
    const open = this.open.get(key);
    if (open && now - open.startedAt < GROUP_JOIN_MS) {
      open.wakes.push(wake);
      return;
    }
    const group: Group = {
      key,
      ready,
      wakes: [wake],
      startedAt: now,
      timer: setTimeout(() => this.settle(group, false), timeoutMs),
    };
    group.timer.unref();
    this.groups.add(group);
    this.open.set(key, group);
  }

  /** After a change: answers every group whose condition now holds (every group, when the stream `ended`). */
  check(ended = false): void {
    for (const g of this.groups) {
      const ok = g.ready();
      if (ok || ended) this.settle(g, ok);
    }
  }

  /** Answers every waiter false; later waits are answered false at once. */
  stop(): void {
    this.stopped = true;
    for (const g of this.groups) this.settle(g, false);
  }

  private settle(g: Group, ok: boolean): void {
    if (!this.groups.delete(g)) return;
    if (this.open.get(g.key) === g) this.open.delete(g.key);
    clearTimeout(g.timer);
    for (const wake of g.wakes) wake(ok);
  }
}
