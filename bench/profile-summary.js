// Summarizes a V8 CPU profile (from `node --cpu-prof`): the functions with the most self time, and the most
// inclusive time among those whose location matches PATTERN (default: nightshift's own code in dist/).
// Usage: node bench/profile-summary.js FILE.cpuprofile [PATTERN] [COUNT]
import { readFileSync } from 'node:fs';
import process from 'node:process';

const [file, pattern = ' dist/', countText = '25'] = process.argv.slice(2);
if (!file) throw new Error('Usage: node bench/profile-summary.js FILE.cpuprofile [PATTERN] [COUNT]');
const profile = JSON.parse(readFileSync(file, 'utf8'));
const count = Number(countText);
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const parents = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);

const name = (node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '').replace(/.*\/(dist|bench)\//, '$1/');
  return `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
};

const selfTime = new Map();
const totalTime = new Map();
let total = 0;
profile.samples.forEach((id, index) => {
  const micros = profile.timeDeltas[index] ?? 0;
  total += micros;
  const node = nodes.get(id);
  selfTime.set(name(node), (selfTime.get(name(node)) ?? 0) + micros);
  // Count a function once per sample even when it recurses.
  const seen = new Set();
  for (let current = id; current !== undefined; current = parents.get(current)) {
    const key = name(nodes.get(current));
    if (seen.has(key)) continue;
    seen.add(key);
    totalTime.set(key, (totalTime.get(key) ?? 0) + micros);
  }
});

const top = (times) =>
  [...times]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, micros]) => `${(micros / 1000).toFixed(0).padStart(8)} ms ${((micros / total) * 100).toFixed(1).padStart(5)}%  ${key}`)
    .join('\n');

const matcher = new RegExp(pattern);
process.stdout.write(`total ${(total / 1000).toFixed(0)} ms\n\nself time:\n${top(selfTime)}\n\n`);
process.stdout.write(`inclusive time, ${pattern}:\n${top(new Map([...totalTime].filter(([key]) => matcher.test(key))))}\n`);
