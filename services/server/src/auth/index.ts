export * from './tokens.js';
export * from './webhooks.js';
export * from './authorizer.js';
