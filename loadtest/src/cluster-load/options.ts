/** Every size and rate of a cluster run, with the defaults sized for a 2-core machine. */
export interface ClusterLoadOptions {
  origins: number;
  edges: number;
  streams: number;
  viewers: number;
  /** Streams published at full bitrate (~2.5 Mbit/s 720p30); the rest are low bitrate. */
  hotStreams: number;
  lowKbps: number;
  /** Zipf exponent of stream popularity (every stream gets one viewer first; the rest follow 1/rank^s). */
  zipf: number;
  /** Viewers opened per second during the ramp. */
  rampPerSecond: number;
  /** Steady measurement window. */
  durationS: number;
  /** A gap between two video frames longer than this is a stall. */
  stallMs: number;
  /** Churn phase length (0 = none): publishers stop/restart, viewers leave/join. */
  churnS: number;
  publisherChurnPerS: number;
  /** Share of churned publishers that go by dropping TCP (the rest stop cleanly). */
  dropFraction: number;
  /** A churned publisher publishes again after this (OBS reconnects about a second later). */
  republishDelayMs: number;
  viewerChurnPerS: number;
  /** SIGTERM each origin in turn (and start a replacement) while publishers reconnect. */
  rolling: boolean;
  /** SIGTERM each edge in turn after the origins (its viewers reconnect to another edge). */
  rollingEdges: boolean;
  /** Share of publishers that negotiate E-RTMP v2 Reconnect. */
  ertmpFraction: number;
  /** Publishers' first reconnect back-off. */
  reconnectDelayMs: number;
  /** Node settings. */
  leaseMs: number;
  pullLingerMs: number;
  shutdownTimeoutMs: number;
  /** Hard bound on the whole run (the runner stops everything then). */
  timeLimitS: number;
  /** Write the JSON report here. */
  json: string | undefined;
  /** Print a progress line every second. */
  progress: boolean;
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: ClusterLoadOptions = {
  origins: 2,
  edges: 3,
  streams: 200,
  viewers: 2000,
  hotStreams: 1,
  lowKbps: 150,
  zipf: 1,
  rampPerSecond: 250,
  durationS: 30,
  stallMs: 1000,
  churnS: 0,
  publisherChurnPerS: 2,
  dropFraction: 0.5,
  republishDelayMs: 1000,
  viewerChurnPerS: 10,
  rolling: false,
  rollingEdges: false,
  ertmpFraction: 0.5,
  reconnectDelayMs: 1000,
  leaseMs: 5000,
  pullLingerMs: 3000,
  shutdownTimeoutMs: 8000,
  timeLimitS: 900,
  json: undefined,
  progress: true,
  log: (line) => process.stderr.write(`${line}\n`),
};
