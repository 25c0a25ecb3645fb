// Cluster control events over NATS: the wire schema, the subjects and the bus. Import from here.
export * from './events/schema.js';
export * from './events/subjects.js';
export * from './events/bus.js';
