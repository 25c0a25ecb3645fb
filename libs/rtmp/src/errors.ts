/**
 * Every protocol violation is raised as an RtmpProtocolError whose `reason` is a short, stable,
 * snake_case code: servers log it, count it in a metric label and close only the offending connection.
 */
export class RtmpProtocolError extends Error {
  constructor(
    /** Stable machine-readable code, used as a metric label (keep the set small and fixed). */
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'RtmpProtocolError';
  }
}
