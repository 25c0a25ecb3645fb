export * from './chunk-walker.js';
export * from './loadgen.js';
export * from './procstat.js';
export * from './source.js';
export * from './stats.js';
export * from './viewer.js';
export * from './flv-walker.js';
export * from './flv-viewer.js';
