/**
 * Addresses of an existing cluster the runner is pointed at (`--origins-at`, `--edges-at`, `--api-at`, ...), and the
 * safety rule: load goes to loopback only unless `--allow-remote` is given.
 */
import { UsageError } from './options.js';

export interface HostPort {
  host: string;
  port: number;
}

/** Hosts that are this machine. A network namespace's addresses are not in it: those need --allow-remote. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

export const isLoopback = (host: string): boolean => LOOPBACK_HOSTS.has(host);

/** `host:port` or `[v6]:port`. */
export function parseHostPort(text: string, flag: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]\s]+):(\d+)$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new UsageError(`${flag} ${text}: expected host:port (IPv6 as [addr]:port)`);
  return { host: m[1]!, port };
}

/** A comma-separated list of `host:port` (empty entries ignored). */
export function parseHostPortList(text: string, flag: string): HostPort[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseHostPort(s, flag));
}

/** `host:port` as it appears in URLs. */
export const formatHostPort = ({ host, port }: HostPort): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/** The host of a URL (`redis://`, `http://`), without IPv6 brackets. */
export function urlHost(url: string, flag: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${flag} ${url}: not a URL`);
  }
  return parsed.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Throws unless every host is loopback; with `allowRemote`, warns once per remote host instead. `hosts` pairs each
 * host with the flag it came from (for the message).
 */
export function checkLoopback(
  hosts: Array<{ host: string; flag: string }>,
  allowRemote: boolean,
  warn: (line: string) => void,
): void {
  const remote = hosts.filter((h) => !isLoopback(h.host));
  if (remote.length === 0) return;
  const list = [...new Set(remote.map((h) => `${h.host} (${h.flag})`))].join(', ');
  if (!allowRemote)
    throw new UsageError(
      `refusing to load ${list}: cluster-load targets only 127.0.0.1, ::1 and localhost unless --allow-remote is given`,
    );
  warn(`WARNING: --allow-remote: loading non-loopback hosts ${list}; make sure you own them and may load them`);
}
