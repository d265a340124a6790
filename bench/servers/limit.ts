/**
 * The limit: node:http answering every request with the bytes of an
 * updateClientPosition reply, after reading its body. Nothing is faster on
 * this stack; every other target is some fraction of it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONSTANT_REPLY } from '../lib/operation.js';
import { serveParent } from '../lib/processes.js';

const reply = Buffer.from(CONSTANT_REPLY);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': reply.length,
    });
    res.end(reply);
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}/graphql` });
});
serveParent({}, () => new Promise<void>((resolve) => server.close(() => resolve())));
