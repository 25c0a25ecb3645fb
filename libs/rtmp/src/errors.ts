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

/**
 * Why an RtmpClient operation failed, classified where it failed (callers switch on `code`, never on the message):
 *   timeout    connect, an onStatus answer or incoming data did not come in time
 *   refused    the TCP connection was refused (ECONNREFUSED)
 *   closed     the connection closed (`reason` is the connection's close reason, e.g. peer_closed, socket_error)
 *   rejected   connect was answered with something other than NetConnection.Connect.Success
 *   not_found  play was answered with NetStream.Play.StreamNotFound
 *   status     another error onStatus (`status` is its code, e.g. NetStream.Publish.BadName) or _error reply
 */
export type RtmpClientErrorCode = 'timeout' | 'refused' | 'closed' | 'rejected' | 'not_found' | 'status';

export class RtmpClientError extends Error {
  constructor(
    readonly code: RtmpClientErrorCode,
    message: string,
    readonly details: { reason?: string; status?: string; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'RtmpClientError';
  }

  /** The server's onStatus / _error code, when it answered one (e.g. `NetStream.Publish.Denied`). */
  get status(): string | undefined {
    return this.details.status;
  }

  /** A short snake_case label for metrics and logs: the close reason for closed connections, else the code. */
  get label(): string {
    return this.code === 'closed' && this.details.reason ? this.details.reason : this.code;
  }
}
