/**
 * The page's charts, drawn here as inline SVG: no script, no library, nothing fetched. Horizontal bars, one per
 * label, scaled to the largest; every label and figure is escaped.
 */
import { formatUsd } from '../output/usage-table.js';
import { escapeHtml } from './escape.js';

/** One bar: its label and its dollars (`null`: unknown, drawn empty and said so). */
export interface Bar {
  label: string;
  usd: number | null;
}

const WIDTH = 520;
const LABEL_WIDTH = 170;
const ROW = 22;
/** Charts keep their largest bars: beyond this many, the rest are summed into one. */
export const MAX_BARS = 24;

/** A bar chart of dollars, `title` above it; a sentence instead when there is nothing to draw. */
export function barChart(title: string, bars: readonly Bar[]): string {
  const shown = fold(bars);
  const heading = `<h3>${escapeHtml(title)}</h3>`;
  if (shown.length === 0) return `<figure class="chart">${heading}<p class="muted">Nothing paid yet.</p></figure>`;
  const largest = Math.max(...shown.map((bar) => bar.usd ?? 0), 1e-12);
  const barSpace = WIDTH - LABEL_WIDTH - 90;
  const rows = shown.map((bar, index) => {
    const y = index * ROW;
    const width = bar.usd === null ? 0 : Math.max(1, Math.round((bar.usd / largest) * barSpace));
    const label = bar.label.length > 26 ? `${bar.label.slice(0, 25)}…` : bar.label;
    const figure = bar.usd === null ? 'unknown' : `$${formatUsd(bar.usd)}`;
    return (
      `<g transform="translate(0,${y})"><title>${escapeHtml(`${bar.label}: ${figure}`)}</title>` +
      `<text x="${LABEL_WIDTH - 6}" y="15" text-anchor="end">${escapeHtml(label)}</text>` +
      `<rect x="${LABEL_WIDTH}" y="4" width="${width}" height="14" rx="2"></rect>` +
      `<text x="${LABEL_WIDTH + width + 6}" y="15">${escapeHtml(figure)}</text></g>`
    );
  });
  const height = shown.length * ROW + 4;
  return (
    `<figure class="chart">${heading}<svg role="img" aria-label="${escapeHtml(title)}" viewBox="0 0 ${WIDTH} ${height}" width="${WIDTH}" height="${height}">` +
    `${rows.join('')}</svg></figure>`
  );
}

/** The bars to draw: the largest {@link MAX_BARS} minus one, and the rest summed as one, when there are more. */
function fold(bars: readonly Bar[]): Bar[] {
  if (bars.length <= MAX_BARS) return [...bars];
  const sorted = [...bars].sort((a, b) => (b.usd ?? 0) - (a.usd ?? 0));
  const kept = sorted.slice(0, MAX_BARS - 1);
  const rest = sorted.slice(MAX_BARS - 1);
  const usd = rest.reduce((sum, bar) => sum + (bar.usd ?? 0), 0);
  return [...kept, { label: `${rest.length} others`, usd: Math.round(usd * 1e9) / 1e9 }];
}
