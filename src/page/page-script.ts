/**
 * The page's own script and style, inlined into every page. The script reads the jobs from the page's JSON data and
 * draws only what is on screen: one page of the table and one page of the contact sheet at a time, so that 100,000
 * jobs open at once. Every text it shows goes through `textContent`, never `innerHTML`: a reply holding markup shows
 * the markup.
 */

/** The fields of each job in the page's data, in order: the data holds arrays, not objects, to stay small. */
export const JOB_FIELDS = [
  'folder',
  'id',
  'kind',
  'model',
  'status',
  'tokens',
  'costUsd',
  'reply',
  'replyCut',
  'error',
  'finishReason',
  'tags',
  'source',
  'prompt',
  'size',
  'quality',
  'images',
  'regenerated',
] as const;

export const PAGE_STYLE = `
:root { color-scheme: light; --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --accent: #3559e0; --bad: #c0362c; --warn: #b76e00; --ok: #2e7d32; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #f7f8fa; }
header, main { max-width: 1200px; margin: 0 auto; padding: 16px 24px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.muted { color: var(--muted); }
.figures { display: flex; gap: 12px; flex-wrap: wrap; }
.figure { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 180px; }
.figure .usd { font-size: 22px; font-weight: 600; display: block; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin: 0; }
.chart svg { font-size: 11px; max-width: 100%; height: auto; }
.chart rect { fill: var(--accent); }
.chart text { fill: var(--ink); }
.facts { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 14px; margin-bottom: 10px; }
.facts dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.warning { color: var(--warn); }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.controls input[type=search] { padding: 5px 8px; min-width: 260px; border: 1px solid var(--line); border-radius: 6px; }
.controls select, .controls button { padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.sheet { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; font-size: 12px; }
.tile .thumb { display: block; aspect-ratio: 1 / 1; background: #eef0f4; }
.tile img { width: 100%; height: 100%; object-fit: cover; display: block; }
.tile .empty { display: flex; align-items: center; justify-content: center; height: 100%; color: var(--muted); font-weight: 600; }
.tile .caption { padding: 6px 8px; }
.tile .prompt { color: var(--muted); display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px; background: #eef0f4; margin-right: 4px; }
.badge.failed { background: #fde8e6; color: var(--bad); }
.badge.incomplete, .badge.pending { background: #fff3dc; color: var(--warn); }
.badge.ok { background: #e6f4ea; color: var(--ok); }
.badge.new { background: #e7edff; color: var(--accent); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { cursor: pointer; user-select: none; background: #f1f3f6; white-space: nowrap; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.job { cursor: pointer; }
tr.job:hover { background: #f7f9ff; }
tr.detail td { background: #fafbfc; white-space: pre-wrap; word-break: break-word; }
.start { color: var(--muted); max-width: 520px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
`;

/** The page's script: table and contact sheet from the JSON data in `#nightshift-data`. */
export const PAGE_SCRIPT = `
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('nightshift-data').textContent);
  const F = data.fields;
  const at = Object.fromEntries(F.map((name, index) => [name, index]));
  const jobs = data.jobs;
  const get = (job, name) => job[at[name]];
  const el = (tag, props, children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  };
  const usd = (value) => (value === null || value === undefined ? 'unknown' : '$' + (Math.round(value * 1e6) / 1e6).toString());
  const badge = (status) => el('span', { class: 'badge ' + status, text: status });

  function pager(box, total, size, state, draw) {
    box.replaceChildren();
    const pages = Math.max(1, Math.ceil(total / size));
    state.page = Math.min(state.page, pages - 1);
    const prev = el('button', { type: 'button', text: '\\u2190 previous' });
    const next = el('button', { type: 'button', text: 'next \\u2192' });
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    prev.addEventListener('click', () => { state.page--; draw(); });
    next.addEventListener('click', () => { state.page++; draw(); });
    box.append(prev, el('span', { class: 'muted', text: ' page ' + (state.page + 1) + ' of ' + pages + ' (' + total + ') ' }), next);
  }

  // The contact sheet: every image job, its images linked to the files beside the page.
  const imageJobs = jobs.filter((job) => get(job, 'kind') === 'image');
  const sheet = document.getElementById('sheet');
  const sheetState = { page: 0, filter: 'all' };
  const SHEET_PAGE = 60;
  function drawSheet() {
    if (!sheet) return;
    const shown = imageJobs.filter((job) => sheetState.filter === 'all' || (sheetState.filter === 'regenerated' ? get(job, 'regenerated') : get(job, 'status') === sheetState.filter));
    pager(document.getElementById('sheet-pager'), shown.length, SHEET_PAGE, sheetState, drawSheet);
    const tiles = [];
    for (const job of shown.slice(sheetState.page * SHEET_PAGE, (sheetState.page + 1) * SHEET_PAGE)) {
      const images = get(job, 'images');
      for (const [index, src] of (images.length > 0 ? images : [null]).entries()) {
        const thumb = src
          ? el('a', { class: 'thumb', href: src, title: src }, [el('img', { src, alt: get(job, 'id') + (images.length > 1 ? ' #' + (index + 1) : ''), loading: 'lazy' })])
          : el('div', { class: 'thumb' }, [el('div', { class: 'empty', text: get(job, 'status') })]);
        const facts = [get(job, 'model'), get(job, 'size'), get(job, 'quality'), usd(get(job, 'costUsd'))].filter(Boolean).join(' \\u00b7 ');
        tiles.push(el('div', { class: 'tile' }, [
          thumb,
          el('div', { class: 'caption' }, [
            el('div', {}, [badge(get(job, 'status')), get(job, 'regenerated') ? el('span', { class: 'badge new', text: 'regenerated in the latest run' }) : null]),
            el('strong', { text: get(job, 'id') }),
            el('div', { class: 'muted', text: facts }),
            el('div', { class: 'prompt', text: get(job, 'prompt') || get(job, 'error') || '' }),
          ]),
        ]));
      }
    }
    sheet.replaceChildren(...tiles);
  }
  const sheetFilter = document.getElementById('sheet-filter');
  if (sheetFilter) sheetFilter.addEventListener('change', () => { sheetState.filter = sheetFilter.value; sheetState.page = 0; drawSheet(); });

  // The table of chat and vision jobs: searched, filtered, sorted, one page at a time.
  const textJobs = jobs.filter((job) => get(job, 'kind') !== 'image');
  const body = document.getElementById('jobs-body');
  const tableState = { page: 0, query: '', status: 'all', sort: null, descending: false };
  const TABLE_PAGE = 100;
  let view = textJobs;
  function refilter() {
    const query = tableState.query.toLowerCase();
    view = textJobs.filter((job) => {
      if (tableState.status !== 'all' && get(job, 'status') !== tableState.status) return false;
      if (!query) return true;
      return [get(job, 'id'), get(job, 'model'), get(job, 'reply'), get(job, 'prompt') || '', get(job, 'tags').join(' ')].some((text) => text.toLowerCase().includes(query));
    });
    if (tableState.sort) {
      const key = tableState.sort;
      const sign = tableState.descending ? -1 : 1;
      view.sort((a, b) => {
        const x = get(a, key);
        const y = get(b, key);
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sign;
      });
    }
    tableState.page = 0;
    drawTable();
  }
  function drawTable() {
    if (!body) return;
    pager(document.getElementById('jobs-pager'), view.length, TABLE_PAGE, tableState, drawTable);
    const rows = [];
    for (const job of view.slice(tableState.page * TABLE_PAGE, (tableState.page + 1) * TABLE_PAGE)) {
      const reply = get(job, 'reply');
      const row = el('tr', { class: 'job', tabindex: '0' }, [
        el('td', { text: get(job, 'id') }),
        el('td', {}, [badge(get(job, 'status'))]),
        el('td', { text: get(job, 'model') }),
        el('td', { class: 'num', text: String(get(job, 'tokens')) }),
        el('td', { class: 'num', text: usd(get(job, 'costUsd')) }),
        el('td', { class: 'start', text: reply.slice(0, 140) }),
      ]);
      const toggle = () => {
        const open = row.nextSibling && row.nextSibling.classList && row.nextSibling.classList.contains('detail');
        if (open) { row.nextSibling.remove(); return; }
        const lines = [];
        if (get(job, 'prompt')) lines.push('Prompt: ' + get(job, 'prompt'), '');
        lines.push(reply + (get(job, 'replyCut') ? '\\n\\n(cut here: the whole reply is in results.jsonl)' : ''));
        if (get(job, 'finishReason')) lines.push('', 'finish_reason: ' + get(job, 'finishReason'));
        lines.push('', 'source: ' + get(job, 'source') + (get(job, 'tags').length ? '   tags: ' + get(job, 'tags').join(', ') : ''));
        row.after(el('tr', { class: 'detail' }, [el('td', { colspan: '6', text: lines.join('\\n') })]));
      };
      row.addEventListener('click', toggle);
      row.addEventListener('keydown', (event) => { if (event.key === 'Enter') toggle(); });
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }
  const search = document.getElementById('jobs-search');
  let timer = 0;
  if (search) search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { tableState.query = search.value; refilter(); }, 150); });
  const statusFilter = document.getElementById('jobs-status');
  if (statusFilter) statusFilter.addEventListener('change', () => { tableState.status = statusFilter.value; refilter(); });
  for (const th of document.querySelectorAll('#jobs th[data-key]')) {
    th.addEventListener('click', () => {
      const key = th.getAttribute('data-key');
      tableState.descending = tableState.sort === key ? !tableState.descending : false;
      tableState.sort = key;
      for (const other of document.querySelectorAll('#jobs th')) other.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', tableState.descending ? 'descending' : 'ascending');
      refilter();
    });
  }
  drawSheet();
  refilter();
  document.body.setAttribute('data-ready', 'true');
})();
`;
