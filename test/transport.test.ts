import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { apiClient } from '../src/cli/client.js';
import { createTransport } from '../src/cli/transport.js';
import { EXIT } from '../src/cli/exit.js';
import { createPriceBook } from '../src/cost/prices.js';
import { loadJobs } from '../src/jobs/load.js';
import { runJobs } from '../src/run/run.js';
import { cli, journalLines, offlineServerPerTest, readCsv, succeededIds, tempDir, writeJobs } from './helpers.js';

const offline = offlineServerPerTest('sk-transport');

const chatJobs = (count: number): object[] => Array.from({ length: count }, (_, index) => ({ id: `j${index}`, model: 'gpt-4o-mini', prompt: `Name colour ${index}` }));

/** A forward proxy as corporate networks run them: it tunnels `CONNECT` requests and records each tunnel's target. */
async function startProxy(): Promise<{ url: string; tunnels: string[]; close: () => Promise<void> }> {
  const tunnels: string[] = [];
  const sockets = new Set<Socket>();
  const proxy: Server = createServer((_request, response) => response.writeHead(405).end());
  proxy.on('connect', (request, client: Socket, head: Buffer) => {
    const target = request.url ?? '';
    tunnels.push(target);
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    tunnels,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}

let proxy: Awaited<ReturnType<typeof startProxy>> | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
});

async function runCli(env: Record<string, string>, jobs: object[], flags: string[] = []): Promise<{ code: number; out: string }> {
  const dir = await tempDir();
  const file = await writeJobs(dir, jobs);
  const out = join(dir, 'out');
  const { code } = await cli(['run', file, '--out', out, '--quiet', ...flags], { env });
  return { code, out };
}

describe('the proxy the environment names', () => {
  it('carries every request through HTTP_PROXY, over kept-alive connections (at most twice --concurrency)', async () => {
    const env = await offline.serve();
    proxy = await startProxy();
    const { code, out } = await runCli({ ...env, HTTP_PROXY: proxy.url }, chatJobs(20), ['--concurrency', '2']);
    expect(code).toBe(EXIT.ok);
    expect((await succeededIds(out)).size).toBe(20);
    const { host } = new URL(env.OPENAI_BASE_URL!);
    expect(proxy.tunnels.length).toBeGreaterThan(0);
    expect(proxy.tunnels.length).toBeLessThanOrEqual(4);
    expect(new Set(proxy.tunnels)).toEqual(new Set([host]));
    expect(offline.server.stats.requests).toBe(20);
  });

  it('reads the lower-case variables too, as curl does', async () => {
    const env = await offline.serve();
    proxy = await startProxy();
    const { code } = await runCli({ ...env, http_proxy: proxy.url }, chatJobs(3));
    expect(code).toBe(EXIT.ok);
    expect(proxy.tunnels.length).toBeGreaterThan(0);
  });

  it('goes straight to the hosts NO_PROXY names', async () => {
    const env = await offline.serve();
    proxy = await startProxy();
    const { code, out } = await runCli({ ...env, HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, chatJobs(3));
    expect(code).toBe(EXIT.ok);
    expect((await succeededIds(out)).size).toBe(3);
    expect(proxy.tunnels).toEqual([]);
  });

  it('keeps the offline server of --offline off the proxy', async () => {
    proxy = await startProxy();
    const { code } = await runCli({ HTTP_PROXY: proxy.url }, chatJobs(3), ['--offline']);
    expect(code).toBe(EXIT.ok);
    expect(proxy.tunnels).toEqual([]);
  });
});

describe('compressed answers', () => {
  it('reads gzip answers as the plain ones', async () => {
    const plain = await runCli(await offline.serve(), chatJobs(5));
    await offline.server.close();
    const zipped = await runCli(await offline.serve({ gzip: true }), chatJobs(5));
    expect(zipped.code).toBe(EXIT.ok);
    const outputs = async (out: string): Promise<string[]> => (await readCsv(join(out, 'results.csv'))).map((row) => row.output ?? '');
    expect(await outputs(zipped.out)).toEqual(await outputs(plain.out));
    expect((await outputs(zipped.out)).every((text) => text.length > 0)).toBe(true);
  });

  it('reads a gzip error answer for its type: an empty account stops the run', async () => {
    const env = await offline.serve({ gzip: true, faults: [{ status: 429, type: 'insufficient_quota', code: 'insufficient_quota' }] });
    const { code } = await runCli(env, chatJobs(3), ['--concurrency', '1']);
    expect(code).toBe(EXIT.stopped);
    expect(offline.server.stats.requests).toBe(1);
  });
});

describe('every encoding the transport accepts', () => {
  const text = JSON.stringify({ lines: Array.from({ length: 200 }, (_, index) => `line ${index}`) });
  const encoders: Record<string, (bytes: Buffer) => Buffer> = { gzip: gzipSync, deflate: deflateSync, br: brotliCompressSync };

  it.each(Object.keys(encoders))('decodes %s, in a JSON answer read whole and in a file answer streamed', async (encoding) => {
    const encoded = encoders[encoding]!(Buffer.from(text));
    const files: Server = createServer((request, response) => {
      const type = request.url === '/json' ? 'application/json' : 'application/octet-stream';
      const accepted = String(request.headers['accept-encoding']);
      if (!accepted.includes(encoding)) response.writeHead(406).end();
      else response.writeHead(200, { 'content-type': type, 'content-encoding': encoding, 'content-length': encoded.length }).end(encoded);
    });
    files.listen(0, '127.0.0.1');
    await once(files, 'listening');
    try {
      const { fetch } = createTransport({});
      const base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
      for (const path of ['/json', '/file']) {
        const response = await fetch(`${base}${path}`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-encoding')).toBeNull();
        expect(await response.text()).toBe(text);
      }
    } finally {
      files.closeAllConnections();
      await new Promise<void>((resolve) => files.close(() => resolve()));
    }
  });
});

/** Runs `jobs` in process with the CLI's own client; `abort` is handed to the run. */
async function runInProcess(jobs: object[], timeoutMs: number, abortSignal?: AbortSignal) {
  const dir = await tempDir();
  const file = await writeJobs(dir, jobs);
  const loaded = await loadJobs([file]);
  const out = join(dir, 'out');
  const client = apiClient({}, timeoutMs, offline.server.url, { connections: 2 });
  const summary = await runJobs(loaded.jobs, {
    outDir: out, client, prices: createPriceBook(), concurrency: 2, maxAttempts: 3, timeoutMs, files: [file], ...(abortSignal ? { abortSignal } : {}),
  });
  return { summary, records: (await journalLines(out)).filter((line) => line.type === 'job') };
}

describe('the deadline', () => {
  it('cuts an answer whose body trickles in at --timeout, and the retry succeeds', async () => {
    await offline.serve({ gzip: true, faults: [{ trickleMs: 100, times: 2 }] });
    const started = Date.now();
    const { summary, records } = await runInProcess(chatJobs(1), 400);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(summary.ok).toBe(1);
    expect(offline.server.stats.requests).toBe(3);
    expect(records).toMatchObject([{ id: 'j0', state: 'done', attempts: 3 }]);
  });

  it('abandons requests in flight at once when the run is aborted, and closes their connections', async () => {
    await offline.serve({ latencyMs: 30_000 });
    const controller = new AbortController();
    const started = Date.now();
    const running = runInProcess(chatJobs(4), 60_000, controller.signal);
    const deadline = Date.now() + 5_000;
    while (offline.server.stats.inFlight < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    const { summary } = await running;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(summary.stopReason).toBe('aborted');
    expect(summary.ok).toBe(0);
    const closed = Date.now() + 2_000;
    while (offline.server.stats.inFlight > 0 && Date.now() < closed) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(offline.server.stats.inFlight).toBe(0);
  });
});
