// The hello-world Node listener of the node-stack scenario: the same (req, res) handler and 13 bytes
// as bench/servers/node-hello.mjs, run by Portico's app workers.
const body = Buffer.from('Hello, World!');
export default function hello(_req, res) {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
  res.end(body);
}
