/**
 * Requests held until the packager has something (a blocking playlist reload's part, a preload-hinted part, the
 * first segment), grouped by what they wait for: at the live edge every viewer waits for the same next part, so
 * one readiness check per packager change and one timer serve them all, and they are answered together.
 *
 * A group takes joiners for GROUP_JOIN_MS after it starts, then a new group (with its own timer) starts for the
 * same condition: a request's timeout is at most GROUP_JOIN_MS short of the one it asked for.
 */

/** Answers one held entry: `ok` true when the condition held, false at the timeout (or when waiting stopped). */
export type Answer<E> = (entry: E, ok: boolean) => void;

interface Group<E> {
  key: string;
  ready: () => boolean;
  answer: Answer<E>;
  entries: E[];
  startedAt: number;
  timer: NodeJS.Timeout;
}

/** Joiners share a group (and its timeout) for this long after the group started. */
export const GROUP_JOIN_MS = 100;

/**
 * `key` names a condition and what to do once it holds: waits with the same key have the same `ready` and
 * `answer`, so a request that joins a group brings only its entry (no closures of its own).
 */
export class WaitGroups<E> {
  /** Every waiting group. */
  private readonly groups = new Set<Group<E>>();
  /** The group that takes joiners, per key. */
  private readonly open = new Map<string, Group<E>>();
  private stopped = false;

  get isEmpty(): boolean {
    return this.groups.size === 0;
  }

  /**
   * Adds `entry` to the waiting group for `key` if one takes joiners (it was not ready at the last change, and any
   * later change is about to be checked); false when there is none: then `wait`.
   */
  join(key: string, entry: E, now = performance.now()): boolean {
    const open = this.open.get(key);
    if (!open || now - open.startedAt >= GROUP_JOIN_MS) return false;
    open.entries.push(entry);
    return true;
  }

  /** Answers `entry` as soon as `ready()` holds (now, or at a later `check()`), or false after `timeoutMs`. */
  wait(
    key: string,
    ready: () => boolean,
    timeoutMs: number,
    answer: Answer<E>,
    entry: E,
    now = performance.now(),
  ): void {
    if (ready()) return answer(entry, true);
    if (this.stopped) return answer(entry, false);
    if (this.join(key, entry, now)) return;
    const group: Group<E> = {
      key,
      ready,
      answer,
      entries: [entry],
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

  private settle(g: Group<E>, ok: boolean): void {
    if (!this.groups.delete(g)) return;
    if (this.open.get(g.key) === g) this.open.delete(g.key);
    clearTimeout(g.timer);
    for (const entry of g.entries) g.answer(entry, ok);
  }
}
