/**
 * CPU and memory of a server process tree from /proc (Linux): utime+stime of the process and its descendants
 * (nginx's workers), VmRSS summed the same way.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** Clock ticks per second for /proc/<pid>/stat times (sysconf(_SC_CLK_TCK), practically always 100). */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in ms. */
  cpuMs: number;
}

/** Parses /proc/<pid>/stat; the command name may contain spaces and parentheses, so split after the last ')'. */
export function parseStat(text: string, ticksPerSecond = clkTck()): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < 0) throw new Error('unreadable /proc stat line');
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { pid, ppid, cpuMs: ((utime + stime) * 1000) / ticksPerSecond };
}

/** VmRSS in KiB from /proc/<pid>/status text (0 when absent, e.g. a zombie). */
export function parseVmRssKiB(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The pid and all its descendants. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const { pid, ppid } = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      let list = children.get(ppid);
      if (!list) children.set(ppid, (list = []));
      list.push(pid);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}

export interface TreeSample {
  at: number;
  pids: number[];
  cpuMs: number;
  rssKiB: number;
}

/**
 * One sample of the tree. Pass `pids` (from an earlier processTree) to skip the /proc scan, which takes 5-50 ms
 * on a loaded machine: the load generator samples once a second and must not stall its event loop.
 * Throws if the root process is gone.
 */
export function sampleTree(root: number, pids: number[] = processTree(root)): TreeSample {
  let cpuMs = 0;
  let rssKiB = 0;
  for (const pid of pids) {
    try {
      cpuMs += parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuMs;
      rssKiB += parseVmRssKiB(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch (err) {
      if (pid === root) throw err;
    }
  }
  return { at: performance.now(), pids, cpuMs, rssKiB };
}

export interface CoreTimes {
  at: number;
  /** Everything but idle and iowait, in ms (user, nice, system, irq, softirq, steal). */
  busyMs: number;
  softirqMs: number;
  /** Steal as the guest sees it (often 0 on VMs that don't report it). */
  stealMs: number;
}

/**
 * One CPU's times from /proc/stat. With the server pinned alone to that CPU this includes the kernel network work
 * done for it in softirq context or by ksoftirqd, which /proc/<pid>/stat does not count.
 */
export function parseCoreTimes(procStat: string, cpu: number, ticksPerSecond = clkTck()): CoreTimes {
  const line = procStat.split('\n').find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) throw new Error(`cpu${cpu} not in /proc/stat`);
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  const ms = (t: number): number => (t * 1000) / ticksPerSecond;
  return {
    at: performance.now(),
    busyMs: ms(user + nice + system + irq + softirq + steal),
    softirqMs: ms(softirq),
    stealMs: ms(steal),
  };
}

export function sampleCore(cpu: number): CoreTimes {
  return parseCoreTimes(readFileSync('/proc/stat', 'utf8'), cpu);
}
