import { readFileSync } from 'node:fs';
import { parseStat, parseVmRssKiB } from '../procstat.js';

export interface ProcSample {
  at: number;
  cpuMs: number;
  rssKiB: number;
}

/** CPU time and RSS of one process from /proc (zeros once it is gone). */
export function readProc(pid: number): ProcSample {
  try {
    return {
      at: performance.now(),
      cpuMs: parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8')).cpuMs,
      rssKiB: parseVmRssKiB(readFileSync(`/proc/${pid}/status`, 'utf8')),
    };
  } catch {
    return { at: performance.now(), cpuMs: 0, rssKiB: 0 };
  }
}
