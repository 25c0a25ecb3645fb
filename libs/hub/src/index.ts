export * from './header-cache.js';
export * from './hub-message.js';
export * from './load-gauge.js';
export * from './metadata.js';
export * from './options.js';
export * from './registry.js';
export * from './stream-hub.js';
export * from './viewer.js';
