export * from './routes.js';
export * from './packager.js';
export * from './playlist.js';
