// The reference for the daemon-throughput benchmark: a node:http server on a unix socket that
// does no work, run by the same Node as the packaged daemon. It reads and parses each request
// like the daemon, then answers at once with a canned ADD result (or {} for DEL). Measured with
// the same load generator and clients in the same run, its latency is the floor that process
// start-free HTTP over a unix socket sets on this machine, before any IPAM work or fsync.
//
//   node bench/null-server.mjs SOCKET
import { rmSync } from 'node:fs';
import { createServer } from 'node:http';

const socket = process.argv[2];
const ADD_ANSWER = JSON.stringify({
  result: { cniVersion: '1.0.0', ips: [{ address: '10.200.0.2/16', gateway: '10.200.0.1' }], routes: [], dns: {} },
});
rmSync(socket, { force: true });
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    if (chunks.length) JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const answer = req.url?.endsWith('/add') ? ADD_ANSWER : '{}';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
    res.end(answer);
  });
});
server.listen(socket);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
