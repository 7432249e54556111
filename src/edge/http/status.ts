/**
 * Small fixed bodies for error and redirect responses, built once. Error pages say the status
 * and nothing about the server's internals.
 */
import { STATUS_CODES } from 'node:http';

const bodies = new Map<number, Buffer>();

export function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}

/** "404 Not Found\n" as a Buffer, cached per status. */
export function statusBody(status: number): Buffer {
  let body = bodies.get(status);
  if (!body) {
    body = Buffer.from(`${status} ${statusText(status)}\n`);
    bodies.set(status, body);
  }
  return body;
}
