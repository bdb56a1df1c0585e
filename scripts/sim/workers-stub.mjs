/**
 * Lets Node import a Durable Object module for its routing function only: `cloudflare:workers`
 * resolves to this stand-in, whose base class is never instantiated by the simulation.
 */
export class DurableObject {}
export class WorkflowEntrypoint {}
export class WorkerEntrypoint {}
