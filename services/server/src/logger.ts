import { hostname } from 'node:os';
import { pino } from 'pino';

/**
 * JSON logs to stdout (pino's default destination), one object per line. Levels are written as labels
 * ("level":"info") and times as ISO strings so log pipelines need no pino-specific mapping.
 * `base` is merged into every line (nodeId, role, ...), on top of pid and hostname.
 */
export function createLogger(level: string, base: object = {}, destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, hostname: hostname(), ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  return destination ? pino(options, destination) : pino(options);
}
