// Two builds of the CLI against one offline server: the overhead scenario's 20,000 chat jobs (no latency, concurrency
// 64), each build run once a round in alternating order, reporting wall time and the CLI's CPU time (user + system,
// from /usr/bin/time). Holding the server fixed isolates the client: the overhead scenario's ratio also moves when
// the server, which shares the two cores, does more or less work.
// Usage: npm run build && node bench/ab.js OLD_DIST NEW_DIST [SERVER_DIST (default NEW_DIST)] [ROUNDS (default 8)]
import { join } from 'node:path';
import process from 'node:process';
import { median, say, scratch, snapshotDist, startServer, timed, writeJobFile } from './lib.js';

const [oldDist, newDist, serverDist = newDist, roundsText = '8'] = process.argv.slice(2);
if (!oldDist || !newDist) throw new Error('Usage: node bench/ab.js OLD_DIST NEW_DIST [SERVER_DIST] [ROUNDS]');
const snapshots = { old: await snapshotDist(oldDist), new: await snapshotDist(newDist) };
const { dir, cleanup } = await scratch();
const server = await startServer({ latencyMs: 0 }, serverDist);
try {
  const file = await writeJobFile(join(dir, 'jobs.jsonl'), 20_000, (index) => ({
    id: `job-${index}`,
    model: 'gpt-4o-mini',
    prompt: `Write a haiku about item ${index}.`,
  }));
  const samples = { old: [], new: [] };
  for (let round = 0; round < Number(roundsText); round++) {
    for (const name of round % 2 === 0 ? ['old', 'new'] : ['new', 'old']) {
      await server.reset();
      const cli = join(snapshots[name].dist, 'cli/index.js');
      const args = [cli, 'run', file, '--out', join(dir, `out-${name}-${round}`), '--quiet', '--concurrency', '64'];
      const result = await timed(process.execPath, args, { env: { OPENAI_BASE_URL: server.url, OPENAI_API_KEY: 'bench' }, measureRss: true });
      if (result.code !== 0) throw new Error(`${name} exited ${result.code}: ${result.stderr}`);
      const seconds = (label) => Number(new RegExp(`${label} time \\(seconds\\): ([\\d.]+)`).exec(result.stderr)?.[1]);
      const cpu = seconds('User') + seconds('System');
      // Before the first request (start-up, validation, planning) and after the last answer (the views, the page).
      const { firstArrival, lastDone } = await server.stats();
      const before = (firstArrival - result.startedAt) / 1000;
      const after = (result.startedAt + result.wallMs - lastDone) / 1000;
      samples[name].push({ wall: result.wallMs / 1000, cpu, before, after });
      say(
        `  round ${round + 1} ${name}: wall ${(result.wallMs / 1000).toFixed(2)} s, cpu ${cpu.toFixed(2)} s, ` +
          `first request after ${before.toFixed(2)} s, exit ${after.toFixed(2)} s after the last answer`,
      );
    }
  }
  for (const key of ['wall', 'cpu', 'before', 'after']) {
    const ratios = samples.new.map((sample, index) => sample[key] / samples.old[index][key]);
    say(
      `${key}: old ${median(samples.old.map((s) => s[key])).toFixed(2)} s, new ${median(samples.new.map((s) => s[key])).toFixed(2)} s, ` +
        `new/old per round median ${median(ratios).toFixed(3)}x (${ratios.map((ratio) => ratio.toFixed(3)).join(' ')})`,
    );
  }
} finally {
  await server.close();
  await cleanup();
  await snapshots.old.cleanup();
  await snapshots.new.cleanup();
}
