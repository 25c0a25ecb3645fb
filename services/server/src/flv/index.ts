import type { FlvProtocol } from './viewer.js';

export * from './routes.js';
export * from './viewer.js';

export const FLV_PROTOCOLS: readonly FlvProtocol[] = ['http-flv', 'ws-flv'];
