/**
 * The load-balancing algorithms, declared once: the schema's enum (sections/upstream.ts), the
 * balancer's switch and `portico proxy --balance` read this list. A module of its own, without
 * zod, so that the CLI can print and check them without loading the config schema (`portico app`
 * and the other commands that take no config file never pay for it).
 */
export const BALANCE_ALGORITHMS = ['round-robin', 'least-conn', 'ip-hash', 'hash', 'random-two'] as const;
export type BalanceAlgorithm = (typeof BALANCE_ALGORITHMS)[number];
