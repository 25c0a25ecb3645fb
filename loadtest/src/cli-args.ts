/** Commander argument parsers shared by the loadtest CLIs: a readable error instead of NaN reaching a run. */
import { InvalidArgumentError } from 'commander';

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer ≥ 0');
  return n;
}

/** "1000,2000": positive integers separated by commas. */
export function positiveIntList(v: string): number[] {
  const out = v.split(',').map((s) => Number(s.trim()));
  if (out.some((n) => !Number.isInteger(n) || n <= 0)) {
    throw new InvalidArgumentError('expected positive integers separated by commas');
  }
  return out;
}
