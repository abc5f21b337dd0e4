/**
 * The HTML page of output folders, as one self-contained file: its style, script, data and charts are inside it;
 * images are linked by relative path, never inlined. Nothing is fetched: a Content-Security-Policy allows only the
 * page's own script and style (by hash) and images beside it.
 */
import { createHash } from 'node:crypto';
import { MONEY_LABELS } from '../cost/money.js';
import { formatUsd } from '../output/usage-table.js';
import { barChart } from './charts.js';
import { escapeHtml, jsonForScript } from './escape.js';
import type { PageJob, PageSummary, RunFacts } from './page-data.js';
import { JOB_FIELDS, PAGE_SCRIPT, PAGE_STYLE } from './page-script.js';

/**
 * The page is written in three parts so that its jobs never need to be held: {@link pageStart}, then each job's
 * {@link pageJob} (separated by commas), then {@link pageEnd}. The jobs come first, as JSON data for the page's script
 * (not shown by itself); the sections that count and sum them follow.
 */
export function pageStart(folders: readonly string[]): string {
  const csp = [
    "default-src 'none'",
    `script-src '${hash(PAGE_SCRIPT)}'`,
    `style-src '${hash(PAGE_STYLE)}'`,
    "img-src 'self' file: data:",
  ].join('; ');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(titleOf(folders))}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<script type="application/json" id="nightshift-data">{"fields":${jsonForScript(JOB_FIELDS)},"jobs":[`;
}

/** One job of the page's data: the array of its {@link JOB_FIELDS}. */
export const pageJob = (job: PageJob): string => jsonForScript(JOB_FIELDS.map((field) => job[field] ?? null));

/** The rest of the page, once every job is written; `generatedAt` is when it is written (ISO). */
export function pageEnd(summary: PageSummary, generatedAt: string): string {
  const title = titleOf(summary.folders);
  const { images, texts } = summary;
  return `]}</script>
<header>
<h1>${escapeHtml(title)}</h1>
<div class="muted">${images + texts} jobs (${images} image, ${texts} chat and vision) in ${summary.folders.map(escapeHtml).join(', ')} &middot; written ${escapeHtml(generatedAt)}</div>
</header>
<main>
<section id="cost">
<h2>Cost</h2>
${figures(summary)}
<div class="charts">
${barChart('Paid in all, by model', summary.charts.byModel.map(([label, usd]) => ({ label, usd })))}
${barChart('Paid in all, by tag (a job counts under each of its tags)', summary.charts.byTag.map(([label, usd]) => ({ label, usd })))}
${barChart('Paid in all, by day (UTC)', summary.charts.byDay.map(([label, usd]) => ({ label, usd })))}
</div>
</section>
<section id="runs">
<h2>Latest run</h2>
${summary.runs.map(facts).join('\n')}
</section>
${images > 0 ? sheetSection() : ''}
${texts > 0 ? tableSection() : ''}
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}

const titleOf = (folders: readonly string[]): string => (folders.length === 1 ? `nightshift: ${folders[0]}` : `nightshift: ${folders.length} output folders`);

/** The three money figures, each with its value for programs (`data-usd`) beside the text. */
function figures({ money }: PageSummary): string {
  const item = (key: keyof typeof MONEY_LABELS, note: string): string =>
    `<div class="figure" data-figure="${key}" data-usd="${money[key]}"><span class="muted">${escapeHtml(MONEY_LABELS[key])}</span>` +
    `<span class="usd">$${formatUsd(money[key])}</span><span class="muted">${escapeHtml(note)}</span></div>`;
  const notes = [
    money.offline ? 'Answers of the offline server: nothing was billed; the figures are what they would have cost.' : '',
    money.unpriced > 0 ? `${money.unpriced} request${money.unpriced === 1 ? ' has' : 's have'} no known price and ${money.unpriced === 1 ? 'is' : 'are'} left out: the figures are incomplete.` : '',
  ].filter(Boolean);
  return (
    `<div class="figures">${item('thisRunUsd', 'the latest run')}${item('currentUsd', 'results.csv, usage.csv TOTAL')}${item('paidUsd', 'every request, superseded answers included')}</div>` +
    notes.map((note) => `<p class="warning">${escapeHtml(note)}</p>`).join('')
  );
}

function facts(run: RunFacts): string {
  const duration = run.startedAt && run.finishedAt ? seconds(Date.parse(run.finishedAt) - Date.parse(run.startedAt)) : run.startedAt ? 'nothing sent' : undefined;
  const tiers = Object.entries(run.tiers).map(([tier, count]) => `${tier} ${count}`).join(', ');
  const rows: [string, string][] = [
    ['folder', run.folder],
    ['started', run.startedAt ?? 'no run recorded'],
    ...(duration ? [['took (to its last answer)', duration] as [string, string]] : []),
    ['job files', run.files.join(', ') || 'none named'],
    ['jobs', String(run.jobs)],
    ['requests journaled', `${run.sent} (${run.retries} retr${run.retries === 1 ? 'y' : 'ies'})`],
    ['concurrency', run.concurrency === undefined ? 'not recorded in the journal' : String(run.concurrency)],
    ['service tiers', tiers || 'none reported'],
    ['batches', run.batches.length > 0 ? `${run.batches.length}: ${run.batches.join(', ')}` : 'none (live requests)'],
    ['answers from', run.origin ?? 'not recorded'],
  ];
  const warnings = run.warnings.map((warning) => `<li class="warning">${escapeHtml(warning)}</li>`).join('');
  return (
    `<div class="facts"><dl>${rows.map(([term, value]) => `<dt>${escapeHtml(term)}</dt><dd>${escapeHtml(value)}</dd>`).join('')}</dl>` +
    (warnings ? `<ul>${warnings}</ul>` : '') +
    '</div>'
  );
}

function sheetSection(): string {
  return `<section id="images">
<h2>Images</h2>
<div class="controls"><label>Show <select id="sheet-filter"><option value="all">all</option><option value="regenerated">regenerated in the latest run</option><option value="failed">failed</option><option value="incomplete">incomplete</option><option value="pending">pending</option></select></label><span id="sheet-pager"></span></div>
<div class="sheet" id="sheet"></div>
</section>`;
}

function tableSection(): string {
  return `<section id="texts">
<h2>Chat and vision jobs</h2>
<div class="controls"><input type="search" id="jobs-search" placeholder="Search id, model, prompt, reply, tag" aria-label="Search jobs"><select id="jobs-status" aria-label="Status"><option value="all">every status</option><option value="ok">ok</option><option value="failed">failed</option><option value="incomplete">incomplete</option><option value="pending">pending</option></select><span id="jobs-pager"></span></div>
<table id="jobs"><thead><tr><th data-key="id">id</th><th data-key="status">status</th><th data-key="model">model</th><th data-key="tokens">tokens</th><th data-key="costUsd">cost</th><th data-key="reply">reply (click a row for all of it)</th></tr></thead><tbody id="jobs-body"></tbody></table>
</section>`;
}

const hash = (text: string): string => `sha256-${createHash('sha256').update(text).digest('base64')}`;

function seconds(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return 'unknown';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
