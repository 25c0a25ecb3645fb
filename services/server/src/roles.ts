/** The roles a node runs as: the CLI commands, node records and node events all use this one list. */
export const NODE_ROLES = ['standalone', 'origin', 'edge'] as const;

export type Role = (typeof NODE_ROLES)[number];

/** The roles that take part in a cluster (Redis registry, NATS bus). */
export type ClusterRole = Exclude<Role, 'standalone'>;
