// The baseline: a bare loop of the openai SDK with p-limit, reading the same job file, with no retries and
// nothing written. Usage: node bench/baseline.js JOBS.jsonl CONCURRENCY [DIST] (OPENAI_BASE_URL names the server).
// With DIST, the SDK is given nightshift's transport from that build (src/cli/transport.ts) instead of its stock
// fetch. Prints one JSON line {"ok", "failed", "byStatus"}.
import { readFile } from 'node:fs/promises';
import process from 'node:process';
import OpenAI from 'openai';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import pLimit from 'p-limit';

const [file, concurrencyText, dist] = process.argv.slice(2);
const transport = dist
  ? (await import(pathToFileURL(join(dist, 'cli/transport.js')).href)).createTransport({}, { connections: Number(concurrencyText) })
  : undefined;
const client = new OpenAI({ apiKey: 'sk-bench', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0, ...(transport ? { fetch: transport.fetch } : {}) });
const limit = pLimit(Number(concurrencyText));
const jobs = (await readFile(file, 'utf8'))
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line));

let ok = 0;
const byStatus = {};
await Promise.all(
  jobs.map((job) =>
    limit(async () => {
      try {
        await client.chat.completions.create({
          model: job.model,
          messages: [{ role: 'user', content: job.prompt }],
          ...(job.max_tokens === undefined ? {} : { max_completion_tokens: job.max_tokens }),
        });
        ok++;
      } catch (error) {
        const status = error?.status ?? 0;
        byStatus[status] = (byStatus[status] ?? 0) + 1;
      }
    }),
  ),
);
process.stdout.write(`${JSON.stringify({ ok, failed: jobs.length - ok, byStatus })}\n`);
