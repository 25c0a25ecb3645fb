// Moved to ../streams/; kept while cluster/ and auth/ imports are migrated.
export type { PlayDecision, PublishDecision, StreamPolicy, StreamRequest } from '../streams/types.js';
export { LocalStreamPolicy } from '../streams/local-policy.js';
