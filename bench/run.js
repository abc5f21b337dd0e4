// nightshift benchmarks against the offline server. Not part of the test suite; needs `npm run build` first
// (`npm run bench` does it). Usage: npm run bench -- [--only overhead,latency,rate-limited,memory,batch,start] [--runs N] [--rate-runs N] [--dist FOLDER]
// Every scenario prints a Markdown table; BENCHMARKS.md records a full run.
import { appendFile, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { fixed, meanInterval, median, ROOT, say, scratch, snapshotDist, startServer as startServerFrom, table, timed, writeCsvJobFile, writeJobFile } from './lib.js';

const SCENARIOS = ['overhead', 'latency', 'rate-limited', 'memory', 'batch', 'start'];
/** New jobs appended to a finished job file to measure how soon a resume sends them. */
const RESUME_NEW_JOBS = 1_000;
/** Rounds of the latency-bound scenario at least, whatever --runs says. */
const LATENCY_MIN_ROUNDS = 6;
/** A verdict on "not below the baseline" needs the interval of the ratio narrower than this on either side. */
const LATENCY_MAX_HALF_WIDTH = 0.01;
const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    runs: { type: 'string', default: '3' },
    // Each rate-limited run lasts about 3 minutes by design (3,600 jobs at 1,200 a minute), four variants a round,
    // and runs land within 1% of each other: one round unless asked.
    'rate-runs': { type: 'string', default: '1' },
    'memory-rows': { type: 'string', default: '100000,1000000' },
    'batch-rows': { type: 'string', default: '100000' },
    // Another build, to measure a candidate change against the same baseline.
    dist: { type: 'string', default: join(ROOT, 'dist') },
  },
});
const only = values.only ? values.only.split(',') : SCENARIOS;
for (const name of only) if (!SCENARIOS.includes(name)) throw new Error(`Unknown scenario ${name}; expected one of ${SCENARIOS.join(', ')}`);
const RUNS = Number(values.runs);
const RATE_RUNS = Number(values['rate-runs']);

// Everything runs from a private copy of the build, which a rebuild during the benchmark cannot touch.
const snapshot = await snapshotDist(values.dist);
const CLI = join(snapshot.dist, 'cli/index.js');
const startServer = (options) => startServerFrom(options, snapshot.dist);
const { buildChatCompletion, chatArrivalEstimate, chatTokenEstimate, parseChatRequest } = await import(pathToFileURL(join(snapshot.dist, 'server/chat.js')).href);

const chatJob = (index) => ({ id: `j${index}`, model: 'gpt-4o-mini', prompt: `Write a haiku about item ${index}.` });

/**
 * Runs the real CLI on `file`; wall time is spawn to exit, startup and the final CSV rewrite included.
 * A failed run throws, unless `tolerate` (then its exit status and stderr are returned).
 */
async function nightshift(file, outDir, url, flags = [], { tolerate = false, quiet = true, ...options } = {}) {
  const result = await timed(process.execPath, [CLI, 'run', file, '--out', outDir, ...(quiet ? ['--quiet'] : []), ...flags], {
    env: { OPENAI_API_KEY: 'sk-bench', OPENAI_BASE_URL: url },
    ...options,
  });
  if (result.code !== 0 && !tolerate) throw new Error(`nightshift exited ${result.code}: ${result.stderr.slice(-2000)}`);
  return result;
}

/** The bare loop; with `transport`, given nightshift's transport from the build under test instead of the stock fetch. */
async function baseline(file, concurrency, url, { tolerate = false, transport = false, ...options } = {}) {
  const result = await timed(process.execPath, [join(ROOT, 'bench/baseline.js'), file, String(concurrency), ...(transport ? [snapshot.dist] : [])], {
    env: { OPENAI_BASE_URL: url },
    ...options,
  });
  if (result.code !== 0 && !tolerate) throw new Error(`baseline exited ${result.code}: ${result.stderr.slice(-2000)}`);
  return result.code === 0 ? { ...result, ...JSON.parse(result.stdout) } : result;
}

/**
 * Runs each arm once a round against a reset server, the order rotating from round to round (a b c, b c a, c a b;
 * with two arms: a b, b a), so that a machine getting slower or faster weighs on every arm alike. Returns each
 * arm's samples, one a round.
 */
async function rotate(server, runs, arms) {
  const names = Object.keys(arms);
  const samples = Object.fromEntries(names.map((name) => [name, []]));
  for (let run = 0; run < runs; run++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(run + i) % names.length];
      await server.reset();
      const result = await arms[name](run);
      const stats = await server.stats();
      samples[name].push({ ...result, stats, windowMs: stats.lastDone - stats.firstArrival });
      say(
        `  run ${run + 1} ${name.padEnd(12)}: wall ${fixed(result.wallMs / 1000)} s, ` +
          `first request to last answer ${fixed((stats.lastDone - stats.firstArrival) / 1000)} s, statuses ${JSON.stringify(stats.byStatus)}`,
      );
    }
  }
  return samples;
}

async function overhead() {
  const JOBS = 20_000;
  const CONCURRENCY = 64;
  say(`\n## Overhead: ${JOBS} chat jobs, no latency, concurrency ${CONCURRENCY}`);
  const { dir, cleanup } = await scratch();
  const server = await startServer({ latencyMs: 0 });
  try {
    const file = await writeJobFile(join(dir, 'jobs.jsonl'), JOBS, chatJob);
    const { baseline: a, nightshift: b, 'same transport': c } = await rotate(server, RUNS, {
      baseline: () => baseline(file, CONCURRENCY, server.url, { measureRss: true }),
      nightshift: (run) => nightshift(file, join(dir, `out-${run}`), server.url, ['--concurrency', String(CONCURRENCY)], { measureRss: true }),
      'same transport': () => baseline(file, CONCURRENCY, server.url, { measureRss: true, transport: true }),
    });
    const medians = (key) => ({ a: median(a.map((s) => s[key])), b: median(b.map((s) => s[key])), c: median(c.map((s) => s[key])) });
    const wall = medians('wallMs');
    const window = medians('windowMs');
    const rss = medians('maxRssMb');
    // Ratios within a round, where the machine's load weighs on every arm alike; their median is the verdict.
    const perRound = (key, other) => b.map((sample, round) => sample[key] / other[round][key]);
    const ratio = (key, other) => `${fixed(median(perRound(key, other)))}x`;
    say(
      table(
        [`measure (median of ${RUNS})`, 'baseline (openai + p-limit)', 'nightshift CLI', 'ratio (median per round)', 'baseline with nightshift\'s transport', 'ratio to it', 'target'],
        [
          ['wall time, spawn to exit', `${fixed(wall.a / 1000)} s`, `${fixed(wall.b / 1000)} s`, ratio('wallMs', a), `${fixed(wall.c / 1000)} s`, ratio('wallMs', c), '<= 0.6x the baseline'],
          ['first request to last answer', `${fixed(window.a / 1000)} s`, `${fixed(window.b / 1000)} s`, ratio('windowMs', a), `${fixed(window.c / 1000)} s`, ratio('windowMs', c), ''],
          ['jobs per second (wall)', fixed((JOBS / wall.a) * 1000, 0), fixed((JOBS / wall.b) * 1000, 0), '', fixed((JOBS / wall.c) * 1000, 0), '', ''],
          ['peak RSS', `${fixed(rss.a, 0)} MB`, `${fixed(rss.b, 0)} MB`, '', `${fixed(rss.c, 0)} MB`, '', '<= 300 MB'],
        ],
      ),
    );
    say(`  nightshift / baseline, wall, round by round: ${perRound('wallMs', a).map((r) => fixed(r, 3)).join(', ')}`);
    say(`  nightshift / baseline with the same transport, wall, round by round: ${perRound('wallMs', c).map((r) => fixed(r, 3)).join(', ')}`);
  } finally {
    await server.close();
    await cleanup();
  }
}

async function latency() {
  const JOBS = 5_000;
  const CONCURRENCY = 50;
  const LATENCY_MS = 200;
  const ideal = (CONCURRENCY * 1000) / LATENCY_MS;
  // A difference of 1% has to show through a spread of about as much between runs: a few more rounds than elsewhere.
  const rounds = Math.max(RUNS, LATENCY_MIN_ROUNDS);
  say(`\n## Latency-bound: ${JOBS} jobs, ${LATENCY_MS} ms latency, concurrency ${CONCURRENCY} (ideal ${ideal} jobs/s), ${rounds} rounds`);
  const { dir, cleanup } = await scratch();
  const server = await startServer({ latencyMs: LATENCY_MS });
  try {
    const file = await writeJobFile(join(dir, 'jobs.jsonl'), JOBS, chatJob);
    // The baseline runs twice a round: how far it lands from itself is the yardstick for "below the baseline".
    const samples = await rotate(server, rounds, {
      baseline: () => baseline(file, CONCURRENCY, server.url),
      nightshift: (run) => nightshift(file, join(dir, `out-${run}`), server.url, ['--concurrency', String(CONCURRENCY)]),
      'baseline again': () => baseline(file, CONCURRENCY, server.url),
    });
    // Throughput two ways: between the first request and the last answer (the sending itself), and from spawn to exit
    // (start-up, validation and the views and page written at the end included), which is what a user waits for.
    const ratesBy = (ms) => Object.fromEntries(Object.entries(samples).map(([name, list]) => [name, list.map((s) => (JOBS / ms(s)) * 1000)]));
    const rates = ratesBy((s) => s.windowMs);
    const wholeRates = ratesBy((s) => s.wallMs);
    const against = (name, by = rates) => {
      const ratios = by[name].map((value, round) => value / by.baseline[round]);
      const { mean, low, high } = meanInterval(ratios);
      return { ratios, median: median(ratios), mean, low, high };
    };
    const ns = against('nightshift');
    const self = against('baseline again');
    const nsWhole = against('nightshift', wholeRates);
    const selfWhole = against('baseline again', wholeRates);
    const share = (name) => `${fixed((median(rates[name]) / ideal) * 100, 1)}%`;
    const interval = (r) => `${fixed(r.mean, 3)}x (${fixed(r.low, 3)} to ${fixed(r.high, 3)})`;
    say(
      table(
        [`measure (${rounds} rounds)`, 'baseline', 'nightshift', 'baseline again', 'target'],
        [
          ['jobs/s, first request to last answer (median)', ...['baseline', 'nightshift', 'baseline again'].map((name) => fixed(median(rates[name]), 1)), ''],
          ['share of ideal', share('baseline'), share('nightshift'), share('baseline again'), '>= 97%'],
          ['against the baseline of the same round, median', '', `${fixed(ns.median, 3)}x`, `${fixed(self.median, 3)}x`, ''],
          ['against the baseline of the same round, mean (95% interval)', '', interval(ns), interval(self), 'not below: interval reaches 1.0x'],
          ['jobs/s, spawn to exit (median)', ...['baseline', 'nightshift', 'baseline again'].map((name) => fixed(median(wholeRates[name]), 1)), ''],
          ['spawn to exit, against the baseline of the same round, median', '', `${fixed(nsWhole.median, 3)}x`, `${fixed(selfWhole.median, 3)}x`, '>= 1.0x'],
          ['spawn to exit, mean (95% interval)', '', interval(nsWhole), interval(selfWhole), ''],
        ],
      ),
    );
    say(`  nightshift against the baseline, round by round: ${ns.ratios.map((r) => fixed(r, 3)).join(', ')}`);
    say(`  the baseline against itself, round by round: ${self.ratios.map((r) => fixed(r, 3)).join(', ')}`);
    say(`  spawn to exit, nightshift against the baseline, round by round: ${nsWhole.ratios.map((r) => fixed(r, 3)).join(', ')}`);
    const halfWidth = (ns.high - ns.low) / 2;
    say(
      halfWidth > LATENCY_MAX_HALF_WIDTH
        ? `  inconclusive: the interval is ±${fixed(halfWidth * 100, 1)}%, wider than ±${LATENCY_MAX_HALF_WIDTH * 100}%; run more rounds (--runs).`
        : ns.high < 1
        ? `  nightshift is below the baseline: all of the interval is under 1.0x (by ${fixed((1 - ns.high) * 100, 1)}% to ${fixed((1 - ns.low) * 100, 1)}%).`
        : `  nightshift is not measurably below the baseline (the interval reaches 1.0x).`,
    );
  } finally {
    await server.close();
    await cleanup();
  }
}

async function rateLimited() {
  const RPM = 1_200;
  const TPM = 200_000;
  const JOBS = 3_600;
  const CONCURRENCY = 64;
  // 3a, 3b: prompts of ~10-20 tokens and max_tokens of 50-250 (the server counts prompt + max_tokens): about 170
  // tokens a request, so the token limit binds (~1,150 requests/min) a little before the request limit does.
  const bounded = (index) => ({
    id: `j${index}`,
    model: 'gpt-4o-mini',
    prompt: `Summarize item ${index} of the catalogue in ${1 + (index % 5)} sentences.`,
    max_tokens: 50 + (index % 5) * 50,
  });
  // 3c: no max_tokens, and a server that charges as OpenAI does (an estimate from the characters on arrival, raised
  // to what the answer used): about 40 tokens a request, so the request limit binds.
  const unbounded = (index) => ({ id: `j${index}`, model: 'gpt-4o-mini', prompt: `Write a haiku about item ${index}.` });
  const request = (job) =>
    parseChatRequest({
      model: job.model,
      messages: [{ role: 'user', content: job.prompt }],
      ...(job.max_tokens === undefined ? {} : { max_completion_tokens: job.max_tokens }),
    });
  const charges = {
    bound: (job) => chatTokenEstimate(request(job)),
    estimate: (job) => {
      const parsed = request(job);
      const used = buildChatCompletion(parsed, { id: 'chatcmpl-bench', created: 0, cachedTokens: 0 }).usage.total_tokens;
      return Math.max(chatArrivalEstimate(parsed), used);
    },
  };
  say(`\n## Rate-limited: server enforces ${RPM} requests/min and ${TPM} tokens/min; ${JOBS} jobs, concurrency ${CONCURRENCY}`);
  const { dir, cleanup } = await scratch();
  try {
    const files = {
      bounded: await writeJobFile(join(dir, 'bounded.jsonl'), JOBS, bounded),
      unbounded: await writeJobFile(join(dir, 'unbounded.jsonl'), JOBS, unbounded),
    };
    const variants = [
      { name: `3a. --rpm ${RPM} --tpm ${TPM}`, jobs: 'bounded', make: bounded, charge: 'bound', flags: ['--rpm', String(RPM), '--tpm', String(TPM)], target: { use: 0.95, errors: 0.01 } },
      { name: '3b. no flags (headers only)', jobs: 'bounded', make: bounded, charge: 'bound', flags: [], target: { use: 0.95, errors: 0.005 } },
      { name: '3c. no flags, outputs unbounded, charged as OpenAI', jobs: 'unbounded', make: unbounded, charge: 'estimate', flags: [], target: { use: 0.9, errors: 0.005 } },
      { name: `3d. --rpm ${RPM} --tpm ${TPM}, outputs unbounded, charged as OpenAI`, jobs: 'unbounded', make: unbounded, charge: 'estimate', flags: ['--rpm', String(RPM), '--tpm', String(TPM)], target: { use: 0.9, errors: 0.005 } },
    ];
    const totals = variants.map((variant) => Array.from({ length: JOBS }, (_, index) => charges[variant.charge](variant.make(index))).reduce((a, b) => a + b, 0));
    const results = variants.map(() => []);
    for (let run = 0; run < RATE_RUNS; run++) {
      const order = variants.map((_, v) => v);
      for (let turn = 0; turn < run % order.length; turn++) order.push(order.shift());
      for (const v of order) {
        const variant = variants[v];
        // A fresh server each time: its buckets start full, as an account's do after a quiet minute.
        const server = await startServer({ rateLimit: { rpm: RPM, tpm: TPM, charge: variant.charge } });
        try {
          await nightshift(files[variant.jobs], join(dir, `out-${run}-${v}`), server.url, ['--concurrency', String(CONCURRENCY), '--max-attempts', '20', ...variant.flags]);
          const stats = await server.stats();
          const windowMs = stats.lastDone - stats.firstArrival;
          const sample = {
            windowMs,
            rpm: ((stats.byStatus[200] ?? 0) / windowMs) * 60_000,
            tpm: (totals[v] / windowMs) * 60_000,
            errorShare: (stats.byStatus[429] ?? 0) / stats.requests,
          };
          results[v].push(sample);
          say(
            `  run ${run + 1} ${variant.name}: ${fixed(windowMs / 1000)} s, ${fixed(sample.rpm, 0)} req/min, ` +
              `${fixed(sample.tpm, 0)} tokens/min, statuses ${JSON.stringify(stats.byStatus)}`,
          );
        } finally {
          await server.close();
        }
      }
    }
    say(
      table(
        [`nightshift (median of ${RATE_RUNS})`, 'duration', 'requests/min', 'tokens/min', 'use of binding limit', '429 share', 'target'],
        variants.map((variant, v) => {
          const samples = results[v];
          const rpm = median(samples.map((s) => s.rpm));
          const tpm = median(samples.map((s) => s.tpm));
          const use = Math.max(rpm / RPM, tpm / TPM);
          return [
            variant.name,
            `${fixed(median(samples.map((s) => s.windowMs)) / 1000, 0)} s`,
            `${fixed(rpm, 0)} (${fixed((rpm / RPM) * 100, 1)}%)`,
            `${fixed(tpm, 0)} (${fixed((tpm / TPM) * 100, 1)}%)`,
            `${fixed(use * 100, 1)}%`,
            `${fixed(median(samples.map((s) => s.errorShare)) * 100, 2)}%`,
            `>= ${variant.target.use * 100}%, <= ${variant.target.errors * 100}% 429s`,
          ];
        }),
      ),
    );
  } finally {
    await cleanup();
  }
}

async function memory() {
  const sizes = values['memory-rows'].split(',').map(Number);
  const largest = Math.max(...sizes);
  say(`\n## Memory: peak RSS of the CLI for ${sizes.join(' and ')} job rows, and ${largest} as CSV (no latency, concurrency 64)`);
  const server = await startServer({ latencyMs: 0 });
  /**
   * One run of the CLI, not quiet: what it says before the first request, and when, tells where a slow start went.
   * "First request" is from spawning the CLI to the server receiving the first request.
   */
  const measured = async (label, file, out) => {
    await server.reset();
    const result = await nightshift(file, out, server.url, ['--concurrency', '64'], { measureRss: true, tolerate: true, quiet: false });
    const { firstArrival, requests } = await server.stats();
    const firstRequestMs = firstArrival - result.startedAt;
    say(`  ${label}: first request ${fixed(firstRequestMs / 1000)} s after start, ${requests} requests; ${outcome(result)}`);
    for (const line of result.stderrLines.filter((line) => line.ms <= firstRequestMs + 1000)) say(`    ${fixed(line.ms / 1000)} s: ${line.text}`);
    return { ...result, label, firstRequestMs, requests };
  };
  const rows = [];
  const resumes = [];
  try {
    for (const size of sizes) {
      const { dir, cleanup } = await scratch();
      try {
        const file = await writeJobFile(join(dir, 'jobs.jsonl'), size, chatJob);
        const out = join(dir, 'out');
        const run = await measured(`${size} rows`, file, out);
        await server.reset();
        const base = await baseline(file, 64, server.url, { measureRss: true, tolerate: true });
        say(`  ${size} rows, baseline: ${outcome(base)}`);
        rows.push({ size, format: 'JSONL', nightshift: run, baseline: base });
        // The same folder again, with new jobs at the end of the file: how soon is new work sent? Once as a resume
        // goes (the checks of the finished rows saved by the run before), once with that saved check removed (a
        // new nightshift version, or a line edited in the middle of the file): every row is checked again first.
        for (const saved of [true, false]) {
          const from = size + (saved ? 0 : RESUME_NEW_JOBS);
          const added = Array.from({ length: RESUME_NEW_JOBS }, (_, index) => `${JSON.stringify(chatJob(from + index))}\n`);
          await appendFile(file, added.join(''));
          if (!saved) await rm(join(out, '.nightshift'), { recursive: true, force: true });
          const label = `resume over ${from} finished + ${RESUME_NEW_JOBS} new${saved ? '' : ', saved check removed'}`;
          resumes.push({ size, saved, ...(await measured(label, file, out)) });
        }
      } finally {
        await cleanup();
      }
    }
    // The issue's own example: a million-row CSV (read as a stream too; no saved check applies to CSV files).
    const { dir, cleanup } = await scratch();
    try {
      const file = await writeCsvJobFile(join(dir, 'jobs.csv'), largest, chatJob);
      rows.push({ size: largest, format: 'CSV', nightshift: await measured(`${largest} CSV rows`, file, join(dir, 'out')) });
    } finally {
      await cleanup();
    }
  } finally {
    await server.close();
  }
  const smallest = rows[0];
  const failed = (result) => (result.code === 0 ? '' : ` (exit ${result.code})`);
  say(
    table(
      ['job rows', 'nightshift peak RSS', 'vs smallest', 'first request after', 'nightshift wall', 'baseline peak RSS', 'target'],
      rows.map((row) => [
        `${row.size} ${row.format}`,
        `${fixed(row.nightshift.maxRssMb, 0)} MB${failed(row.nightshift)}`,
        `${fixed(row.nightshift.maxRssMb / smallest.nightshift.maxRssMb)}x`,
        `${fixed(row.nightshift.firstRequestMs / 1000)} s`,
        `${fixed(row.nightshift.wallMs / 1000, 1)} s`,
        row.baseline ? `${fixed(row.baseline.maxRssMb, 0)} MB${failed(row.baseline)}` : '',
        '<= 300 MB; largest <= 1.3x smallest',
      ]),
    ),
  );
  say(
    table(
      ['resume', 'first request after', 'requests sent', 'peak RSS', 'wall', 'target'],
      resumes.map((resumed) => [
        resumed.label,
        `${fixed(resumed.firstRequestMs / 1000)} s${failed(resumed)}`,
        String(resumed.requests),
        `${fixed(resumed.maxRssMb, 0)} MB`,
        `${fixed(resumed.wallMs / 1000, 1)} s`,
        resumed.size === 1_000_000 && resumed.saved ? '<= 10 s' : '',
      ]),
    ),
  );
}

/**
 * How soon the first request of a small run leaves: spawn to the server receiving it, for nightshift (a fresh output
 * folder each round) and the bare loop, 5,000 chat jobs, rounds alternating.
 */
async function start() {
  const JOBS = 5_000;
  const CONCURRENCY = 64;
  say(`\n## Start-up: spawn to first request, ${JOBS} chat jobs (JSONL, fresh output folder), concurrency ${CONCURRENCY}`);
  const { dir, cleanup } = await scratch();
  const server = await startServer({ latencyMs: 0 });
  try {
    const file = await writeJobFile(join(dir, 'jobs.jsonl'), JOBS, chatJob);
    const { baseline: a, nightshift: b } = await rotate(server, RUNS, {
      baseline: () => baseline(file, CONCURRENCY, server.url),
      nightshift: (run) => nightshift(file, join(dir, `out-${run}`), server.url, ['--concurrency', String(CONCURRENCY)]),
    });
    const first = (sample) => sample.stats.firstArrival - sample.startedAt;
    const perRound = b.map((sample, round) => first(sample) / first(a[round]));
    say(
      table(
        [`measure (median of ${RUNS})`, 'baseline (openai + p-limit)', 'nightshift CLI', 'ratio (median per round)', 'target'],
        [['spawn to first request', `${fixed(median(a.map(first)) / 1000)} s`, `${fixed(median(b.map(first)) / 1000)} s`, `${fixed(median(perRound))}x`, '<= 0.4 s']],
      ),
    );
    say(`  rounds (s), baseline: ${a.map((sample) => fixed(first(sample) / 1000)).join(', ')}; nightshift: ${b.map((sample) => fixed(first(sample) / 1000)).join(', ')}`);
  } finally {
    await server.close();
    await cleanup();
  }
}

/**
 * `run --batch` over 100,000 jobs: submitting (split into two parts of 50,000, written and uploaded) and, with a
 * second command, collecting (two output files read as streams and journaled), each spawn to exit with its peak RSS.
 * The bare loop sending the same jobs live, in the same run, is the baseline the figures are put against.
 */
async function batch() {
  const size = Number(values['batch-rows']);
  say(`\n## Batch: submitting and collecting ${size} jobs through the offline server's Batch API`);
  const server = await startServer({ latencyMs: 0 });
  const { dir, cleanup } = await scratch();
  try {
    const file = await writeJobFile(join(dir, 'jobs.jsonl'), size, chatJob);
    const rows = [];
    for (let round = 0; round < RUNS; round++) {
      const out = join(dir, `out-${round}`);
      await server.reset();
      const submit = await nightshift(file, out, server.url, ['--batch'], { measureRss: true });
      // The offline server answers a batch's lines when it is next read: done here, so that the collect command's
      // time is nightshift's collecting, not the test double's answering (reported apart).
      const answering = await answerBatches(out, server.url);
      const collect = await nightshift(file, out, server.url, ['--batch'], { measureRss: true });
      await server.reset();
      const base = await baseline(file, 64, server.url, { measureRss: true });
      say(`  round ${round + 1}: submit ${outcome(submit)}; the offline server answered the lines in ${fixed(answering / 1000, 1)} s; collect ${outcome(collect)}; bare loop live ${outcome(base)}`);
      rows.push({ submit, collect, base, answering });
    }
    say(
      table(
        ['round', 'submit wall', 'submit peak RSS', 'server answering', 'collect wall', 'collect peak RSS', 'bare loop (live) wall', 'submit + collect vs bare loop', 'target'],
        rows.map((row, index) => [
          String(index + 1),
          `${fixed(row.submit.wallMs / 1000, 1)} s`,
          `${fixed(row.submit.maxRssMb, 0)} MB`,
          `${fixed(row.answering / 1000, 1)} s`,
          `${fixed(row.collect.wallMs / 1000, 1)} s`,
          `${fixed(row.collect.maxRssMb, 0)} MB`,
          `${fixed(row.base.wallMs / 1000, 1)} s`,
          `${fixed((row.submit.wallMs + row.collect.wallMs) / row.base.wallMs)}x`,
          'each < 30 s, <= 300 MB',
        ]),
      ),
    );
  } finally {
    await cleanup();
    await server.close();
  }
}

/** Reads every batch a folder submitted until it has ended; returns how long that took, in milliseconds. */
async function answerBatches(out, url) {
  const started = Date.now();
  const ledger = await readFile(join(out, '.nightshift', 'batches.jsonl'), 'utf8');
  const ids = ledger.split('\n').filter(Boolean).map((line) => JSON.parse(line)).filter((record) => record.type === 'submitted').map((record) => record.batchId);
  for (const id of ids) {
    for (;;) {
      const response = await globalThis.fetch(`${url}/batches/${id}`, { headers: { authorization: 'Bearer sk-bench' } });
      const { status } = await response.json();
      if (['completed', 'failed', 'expired', 'cancelled'].includes(status)) break;
      await sleep(100);
    }
  }
  return Date.now() - started;
}

/** Peak memory and time of a run, and how it ended when it failed (a heap out of memory, typically). */
function outcome(result) {
  const reason = /heap out of memory|Killed|signal \d+/.exec(result.stderr)?.[0] ?? result.stderr.slice(-200);
  const ended = result.code === 0 ? '' : `, FAILED with exit ${result.code}: ${reason}`;
  return `${fixed(result.maxRssMb, 0)} MB peak RSS in ${fixed(result.wallMs / 1000, 1)} s${ended}`;
}

const run = { overhead, latency, 'rate-limited': rateLimited, memory, batch, start };
try {
  for (const name of only) await run[name]();
} finally {
  await snapshot.cleanup();
}
