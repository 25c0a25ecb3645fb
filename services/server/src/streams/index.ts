export { StreamAccess, type Membership, type StreamAccessObserver, type ViewerProtocol } from './access.js';
export { AuthFailureLimiter, ConnectionsPerIp } from './client-limits.js';
export { LiveWaiters } from './live-waiters.js';
export { LocalStreamPolicy } from './local-policy.js';
export { nameProblem } from './names.js';
export { streamLabel } from './redact.js';
export type { Denial, PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from './types.js';
