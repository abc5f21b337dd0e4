import { describe, expect, it } from 'vitest';
import { Progress } from '../src/cli/progress.js';
import { zeroUsage, type Job } from '../src/common/types.js';
import type { JobRecord } from '../src/output/journal.js';

/*
 * The live progress line on a terminal: redrawn in place, so it must never be wider than the terminal, or each
 * redraw wraps onto a new line and the screen fills with copies of it.
 */

const job = { id: 'j', kind: 'chat', model: 'm', tags: [], source: { file: 'f.jsonl', line: 1 } } as unknown as Job;
const done: JobRecord = {
  type: 'job', id: 'j', fingerprint: 'x', state: 'done', kind: 'chat', model: 'm', tags: [], source: 'f.jsonl:1', attempts: 1,
  output: '', files: [], usage: { ...zeroUsage(), total_tokens: 123_456 }, costUsd: 0.123456, latencyMs: 1, startedAt: '', finishedAt: '',
};

/** What a terminal shows on the progress line after each redraw: the text after the last carriage return, escapes removed. */
function drawnLines(output: string): string[] {
  return output
    .split('\r')
    // What comes before the first carriage return is plain lines, which scroll as any output does.
    .slice(1)
    // eslint-disable-next-line no-control-regex
    .map((piece) => piece.replace(/\u001b\[K/g, '').replace(/\n$/, ''))
    .filter((piece) => piece !== '' && !piece.includes('\n'));
}

function terminal(columns: number | undefined) {
  const screen = { columns, output: '' };
  const progress = new Progress({
    write: (text) => (screen.output += text),
    isTTY: true,
    intervalSeconds: 30,
    now: () => 0,
    columns: () => screen.columns,
  });
  progress.handle({ type: 'planned', total: 200, skipped: 0, moved: 0, rerun: 0, fresh: 200, left: 0, offline: 0 });
  return { screen, progress };
}

describe('the live progress line fits the terminal', () => {
  it.each([80, 60, 40, 20])('at %i columns, every redraw is narrower than the terminal', (columns) => {
    const { screen, progress } = terminal(columns);
    for (let i = 0; i < 20; i++) progress.handle({ type: 'finished', job, record: done });
    progress.stop();
    const lines = drawnLines(screen.output);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.length).toBeLessThan(columns);
  });

  it('follows a resize: the lines drawn after it fit the new width', () => {
    const { screen, progress } = terminal(120);
    progress.handle({ type: 'finished', job, record: done });
    const before = screen.output.length;
    screen.columns = 50;
    progress.handle({ type: 'finished', job, record: done });
    progress.handle({ type: 'finished', job, record: done });
    progress.stop();
    for (const line of drawnLines(screen.output.slice(before))) expect(line.length).toBeLessThan(50);
  });

  it('keeps the counts when it has to cut: done/total comes first', () => {
    const { screen, progress } = terminal(30);
    progress.handle({ type: 'finished', job, record: done });
    progress.stop();
    expect(drawnLines(screen.output).at(-1)).toMatch(/^1\/200 sent/);
  });

  it('clears what it drew with an erase to the end of the line, not with spaces that could wrap', () => {
    const { screen, progress } = terminal(40);
    progress.handle({ type: 'finished', job, record: done });
    progress.handle({ type: 'warning', message: 'something to say' });
    progress.stop();
    expect(screen.output).not.toMatch(/ {40}/);
    expect(screen.output).toContain('something to say\n');
  });
});
