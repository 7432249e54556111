// The floor of a Node server's memory per connection: raw node:net sockets answering every read
// with a fixed 5-byte HTTP response (no HTTP parser, no ServerResponse). Used by the idle scenario
// to show what node:http adds per connection. Not an HTTP server: only for that measurement. env: PORT.
import { createServer } from 'node:net';

const answer = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
const server = createServer((socket) => {
  socket.on('data', () => socket.write(answer));
  socket.on('error', () => socket.destroy());
});
server.listen(Number(process.env.PORT) || 18080, '127.0.0.1', 4096);
process.on('SIGTERM', () => process.exit(0));
