/**
 * Reads a V8 CPU profile (`node --cpu-prof`, a .cpuprofile file) and sums self time per function, optionally only
 * for the samples taken within a window of the profiled process's monotonic clock (the same clock as
 * `process.hrtime` on Linux, so a parent process on the same machine can name the window it measured).
 */

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** µs. */
  startTime: number;
  samples: number[];
  /** µs between consecutive samples (the first from startTime). */
  timeDeltas: number[];
}

export interface SelfTimeEntry {
  /** `functionName file:line`, or `(garbage collector)`, `(program)`, `(idle)`. */
  name: string;
  selfMs: number;
  /** Share of the non-idle time in the window, in percent. */
  percent: number;
}

const US_PER_MS = 1000;

/** The last two path elements of a script URL: enough to find it, short enough to read. */
function shortUrl(url: string): string {
  if (!url) return '';
  const parts = url.replace(/^file:\/\//, '').split('/');
  return parts.slice(-2).join('/');
}

function frameName(n: CpuProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const fn = functionName || '(anonymous)';
  return url ? `${fn} ${shortUrl(url)}:${lineNumber + 1}` : fn;
}

/**
 * Self time per function (all nodes with the same name, file and line summed), largest first. `window` is
 * [from, to] in µs of the profiled process's monotonic clock; without it, the whole profile.
 */
export function topSelfTime(profile: CpuProfile, top: number, window?: [number, number]): SelfTimeEntry[] {
  const nameOf = new Map<number, string>();
  for (const n of profile.nodes) nameOf.set(n.id, frameName(n));
  const selfUs = new Map<string, number>();
  let t = profile.startTime;
  let busyUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    // A sample's time is attributed from the previous one to it (the profiler's own convention).
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (window && (t < window[0] || t > window[1])) continue;
    const name = nameOf.get(profile.samples[i]!) ?? '(unknown)';
    selfUs.set(name, (selfUs.get(name) ?? 0) + delta);
    if (name !== '(idle)') busyUs += delta;
  }
  return [...selfUs]
    .filter(([name]) => name !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({
      name,
      selfMs: Math.round(us / US_PER_MS),
      percent: busyUs > 0 ? Math.round((1000 * us) / busyUs) / 10 : 0,
    }));
}
