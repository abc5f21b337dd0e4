// The offline server in a process of its own, so the client being measured does not share its CPU time.
// Usage: node bench/server.js '<OfflineServerOptions as JSON>' [DIST folder, default ../dist]
// Prints one JSON line {"url": ...}; then reads commands on stdin, one per line:
//   stats  -> prints {"requests", "byStatus", "maxInFlight", "firstArrival", "lastDone"} (epoch ms)
//   reset  -> forgets traffic (stats, rate-limit buckets) and the timing marks
// Closes and exits when stdin ends.
import process from 'node:process';
import { createInterface } from 'node:readline';
import { pathToFileURL, URL } from 'node:url';

const options = JSON.parse(process.argv[2] ?? '{}');
const dist = process.argv[3] ? pathToFileURL(`${process.argv[3]}/`) : new URL('../dist/', import.meta.url);
const { startOfflineServer } = await import(new URL('server/server.js', dist).href);
const server = await startOfflineServer({ recordRequests: false, ...options });

// The first request's arrival and the last answer's completion, without a request log: the server updates its
// counters in place, so watching two of them is exact and costs nothing per request worth measuring.
let firstArrival;
let lastDone;
watch(server.stats, 'requests', () => {
  firstArrival ??= Date.now();
});
watch(server.stats, 'inFlight', (value, previous) => {
  if (value < previous) lastDone = Date.now();
});

function watch(object, key, onSet) {
  let value = object[key];
  Object.defineProperty(object, key, {
    get: () => value,
    set: (next) => {
      const previous = value;
      value = next;
      onSet(next, previous);
    },
    enumerable: true,
  });
}

process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = line.trim();
  if (command === 'stats') {
    const { requests, byStatus, maxInFlight } = server.stats;
    process.stdout.write(`${JSON.stringify({ requests, byStatus, maxInFlight, firstArrival, lastDone })}\n`);
  } else if (command === 'reset') {
    server.reset();
    firstArrival = undefined;
    lastDone = undefined;
    process.stdout.write('{"reset":true}\n');
  }
}
await server.close();
process.exit(0);
