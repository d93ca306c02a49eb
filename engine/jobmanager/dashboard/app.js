// Sluice web dashboard: plain JavaScript against the jobmanager's JSON
// status (same origin). It polls every 2 s and redraws what is on screen.
// The cluster token is asked for, kept in this page's memory (or, if the
// user ticks the box, in sessionStorage) and sent only in an Authorization
// header: never in a URL, never written into the page.
'use strict';

const POLL_MS = 2000;
let token = null;
try { token = sessionStorage.getItem('sluice-token'); } catch (e) { /* storage off */ }
let timer = null;
let route = null;
let jobTab = 'graph';
let generation = 0;  // bumps on navigation: late answers of an old page are dropped

// ------------------------------------------------------------------ helpers

/** Element builder: text goes in as text nodes, never as HTML. */
function h(tag, attrs, ...children) {
  const e = tag === 'svg' || SVG_TAGS.has(tag)
    ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
const SVG_TAGS = new Set(['g', 'rect', 'text', 'path', 'defs', 'marker', 'title', 'tspan', 'line']);

function fmtNum(n) {
  if (n === null || n === undefined) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + 'G';
  if (a >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(a < 10 ? 1 : 0);
}
function fmtRate(n) { return fmtNum(n) + '/s'; }
function fmtPct(x) { return x === null || x === undefined ? '–' : Math.round(x * 100) + '%'; }
function fmtBytes(b) {
  if (!b) return '0 B';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1) : b) + ' ' + u[i];
}
function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return ms + ' ms';
  const s = ms / 1000;
  if (s < 120) return s.toFixed(s < 10 ? 2 : 1) + ' s';
  const m = Math.floor(s / 60);
  if (m < 120) return m + ' min ' + Math.round(s % 60) + ' s';
  const hours = Math.floor(m / 60);
  if (hours < 48) return hours + ' h ' + (m % 60) + ' min';
  return Math.floor(hours / 24) + ' d ' + (hours % 24) + ' h';
}
function fmtTime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
function fmtWatermark(o) {
  if (o.watermark === 'end') return 'end of input';
  if (o.watermark_ms === null) return 'none yet';
  return fmtTime(o.watermark_ms) + ' (lag ' + fmtMs(o.watermark_lag_ms) + ')';
}
function badge(state) { return h('span', { class: 'badge ' + state, 'data-testid': 'state-badge' }, state); }

function banner(text, kind) {
  const b = document.getElementById('banner');
  if (!text) { b.hidden = true; return; }
  b.hidden = false;
  b.className = kind || '';
  b.textContent = text;
}

// ------------------------------------------------------------------ auth

function headers() { return token ? { Authorization: 'Bearer ' + token } : {}; }

function updateAuth() {
  document.getElementById('auth-state').textContent = token ? 'token set' : 'no token';
  document.getElementById('auth-button').textContent = token ? 'Forget token' : 'Enter token';
}

/** Asks for the token in a dialog; resolves true once one is set. */
function askToken() {
  const dlg = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  input.value = '';
  return new Promise((resolve) => {
    const done = (ok) => {
      dlg.removeEventListener('close', onClose);
      resolve(ok);
    };
    const onClose = () => {
      if (dlg.returnValue === 'ok' && input.value.trim()) {
        token = input.value.trim();
        if (document.getElementById('token-remember').checked) {
          try { sessionStorage.setItem('sluice-token', token); } catch (e) { /* storage off */ }
        }
        input.value = '';
        updateAuth();
        done(true);
      } else {
        input.value = '';
        done(false);
      }
    };
    dlg.addEventListener('close', onClose);
    dlg.returnValue = '';
    dlg.showModal();
  });
}

function forgetToken() {
  token = null;
  try { sessionStorage.removeItem('sluice-token'); } catch (e) { /* storage off */ }
  updateAuth();
}

function confirmAction(text) {
  const dlg = document.getElementById('confirm-dialog');
  document.getElementById('confirm-text').textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'yes'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
  });
}

// ------------------------------------------------------------------ HTTP

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  const r = await fetch(path, Object.assign({ headers: headers(), cache: 'no-store' }, options || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new HttpError(r.status, (body && body.error) || ('HTTP ' + r.status));
  return body;
}

/** GET that asks for the token once when the cluster closes reads to callers without it. */
async function read(path) {
  try {
    return await api(path);
  } catch (e) {
    if ((e.status === 401 || e.status === 403) && await askToken()) return api(path);
    throw e;
  }
}

async function action(jobId, what) {
  const words = { cancel: 'Cancel', savepoint: 'Take a savepoint of', stop: 'Stop with a savepoint' };
  if (what !== 'savepoint' && !(await confirmAction(`${words[what]} job ${jobId}?`))) return;
  if (!token && !(await askToken())) return;
  banner(what === 'cancel' ? 'Cancelling…' : 'Taking a savepoint…');
  try {
    const r = await api(`/jobs/${encodeURIComponent(jobId)}/${what}`, { method: 'POST', headers: headers() });
    banner(what === 'cancel' ? `Job ${jobId} cancelled.` : `Savepoint ${r.savepoint_id} written to ${r.path}` +
      (what === 'stop' ? '; the job stopped.' : '.'), 'ok');
  } catch (e) {
    if (e.status === 401 || e.status === 403) forgetToken();
    banner(`${words[what]} failed: ${e.message}`, 'error');
  }
  refresh();
}

// ------------------------------------------------------------------ pages

function renderOverview(main, o) {
  const by = o.jobs_by_state;
  main.replaceChildren(
    h('h1', {}, 'Cluster'),
    h('div', { class: 'cards' },
      card('Task managers', o.taskmanager_count, 'tm-count'),
      card('Slots used', `${o.slots_used} / ${o.slots}`, 'slots'),
      card('Running jobs', by.RUNNING + by.RESTARTING + by.CREATED, 'running-jobs'),
      card('Finished', by.FINISHED, null), card('Cancelled', by.CANCELED, null), card('Failed', by.FAILED, null)),
    h('h2', {}, 'Jobs'),
    o.jobs.length === 0 ? h('p', { class: 'muted' }, 'No jobs yet: sluice submit JOB.so') :
      h('table', { 'data-testid': 'jobs-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Job id', 'State', 'Parallelism', 'Restarts', 'Last checkpoint',
          'Submitted', 'Duration'].map((t, i) => h('th', { class: i >= 3 && i <= 5 ? 'num' : null }, t)))),
        h('tbody', {}, o.jobs.slice().sort((a, b) => b.submitted_ms - a.submitted_ms).map((j) =>
          h('tr', { 'data-testid': 'job-row' },
            h('td', {}, h('a', { href: '#/jobs/' + encodeURIComponent(j.id) }, j.name)),
            h('td', {}, j.id), h('td', {}, badge(j.state)),
            h('td', { class: 'num' }, j.parallelism), h('td', { class: 'num' }, j.restarts),
            h('td', { class: 'num' }, j.last_checkpoint_id || '–'),
            h('td', {}, fmtTime(j.submitted_ms)),
            h('td', {}, fmtMs((j.ended_ms || Date.now()) - j.submitted_ms)))))));
}

function card(k, v, id) {
  return h('div', { class: 'card', 'data-testid': id }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k));
}

function renderTaskManagers(main, tms) {
  main.replaceChildren(
    h('h1', {}, 'Task managers'),
    tms.length === 0 ? h('p', { class: 'muted' }, 'No taskmanager has registered.') :
      h('table', { 'data-testid': 'tm-table' },
        h('thead', {}, h('tr', {}, ['Id', 'Slots used', 'Tasks', 'Memory (RSS)', 'Data-plane connections in / out',
          'Last heartbeat', 'Data address', 'Control address'].map((t) => h('th', {}, t)))),
        h('tbody', {}, tms.map((t) => h('tr', { 'data-testid': 'tm-row' },
          h('td', {}, t.id), h('td', { class: 'num' }, `${t.slots_used} / ${t.slots}`),
          h('td', { class: 'num' }, t.tasks), h('td', { class: 'num' }, fmtBytes(t.rss_bytes)),
          h('td', { class: 'num' }, `${t.inbound_connections} / ${t.outbound_connections}`),
          h('td', { class: 'num' }, fmtMs(t.last_heartbeat_ms_ago) + ' ago'),
          h('td', {}, t.data_address), h('td', {}, t.control_address))))));
}

function renderJob(main, j) {
  const running = j.state === 'RUNNING';
  const head = h('div', { class: 'jobhead' },
    h('div', {},
      h('h1', { 'data-testid': 'job-name' }, j.name, ' ', badge(j.state)),
      h('div', { class: 'muted' }, `${j.id} · parallelism ${j.parallelism} · attempt ${j.attempt} · ` +
        `${j.restarts} restart${j.restarts === 1 ? '' : 's'} · submitted ${fmtTime(j.submitted_ms)}`),
      j.restored_from ? h('div', { class: 'muted', 'data-testid': 'restored-from' },
        `Restored from ${j.restored_from.savepoint ? 'savepoint' : 'checkpoint'} ${j.restored_from.checkpoint_id}` +
        ` (${j.restored_from.path})`) : null,
      j.last_failure ? h('div', { class: 'muted' }, 'Last failure: ' + j.last_failure) : null),
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-testid': 'action-savepoint', disabled: !running,
        onclick: () => action(j.id, 'savepoint') }, 'Savepoint'),
      h('button', { type: 'button', 'data-testid': 'action-stop', disabled: !running,
        onclick: () => action(j.id, 'stop') }, 'Stop with savepoint'),
      h('button', { type: 'button', class: 'danger', 'data-testid': 'action-cancel',
        disabled: !['RUNNING', 'RESTARTING', 'CREATED'].includes(j.state), onclick: () => action(j.id, 'cancel') },
      'Cancel')));
  const tabs = [['graph', 'Graph'], ['subtasks', 'Subtasks'], ['checkpoints', 'Checkpoints'],
    ['failures', `Restarts & failures (${j.failures.length})`], ['config', 'Configuration'], ['logs', 'Logs']];
  const bar = h('div', { class: 'tabs' }, tabs.map(([id, label]) =>
    h('button', { type: 'button', class: id === jobTab ? 'active' : null, 'data-testid': 'tab-' + id,
      onclick: () => { jobTab = id; refresh(); } }, label)));
  const panel = h('div', { class: 'tabpanel', 'data-testid': 'tab-panel' });
  switch (jobTab) {
    case 'graph': panel.append(graph(j)); break;
    case 'subtasks': panel.append(subtasks(j)); break;
    case 'checkpoints': panel.append(...checkpoints(j)); break;
    case 'failures': panel.append(...failures(j)); break;
    case 'config': panel.append(...config(j)); break;
    case 'logs': panel.append(logs(j)); break;
  }
  const old = main.querySelector('pre.log');
  main.replaceChildren(head, bar, panel);
  if (jobTab === 'logs' && old) panel.querySelector('pre.log').replaceWith(old);
}

/**
 * Boxes and arrows: vertices in columns by their distance from a source;
 * dead-letter sinks in a row below, fed by dashed lines.
 */
function graph(j) {
  const W = 270, GAPX = 80, GAPY = 26, PAD = 20;
  const main = j.vertices.filter((v) => !v.is_dead_letter_sink);
  const dlq = j.vertices.filter((v) => v.is_dead_letter_sink);
  const flow = j.edges.filter((e) => !e.dead_letter);
  const layer = new Map(j.vertices.map((v) => [v.id, 0]));
  for (let pass = 0; pass < main.length; pass++) {
    for (const e of flow) layer.set(e.target, Math.max(layer.get(e.target), layer.get(e.source) + 1));
  }
  const height = (v) => 110 + 14 * Math.min(v.operators.length, 4);
  const cols = [];
  for (const v of main) (cols[layer.get(v.id)] = cols[layer.get(v.id)] || []).push(v);
  const pos = new Map();
  let maxY = 0;
  cols.forEach((col, c) => {
    let y = PAD;
    for (const v of col) {
      pos.set(v.id, { x: PAD + c * (W + GAPX), y, h: height(v) });
      y += height(v) + GAPY;
    }
    maxY = Math.max(maxY, y);
  });
  const ncols = Math.max(cols.length, dlq.length, 1);
  dlq.forEach((v, i) => {
    pos.set(v.id, { x: PAD + (ncols - dlq.length + i) * (W + GAPX), y: maxY + 30, h: height(v) });
  });
  if (dlq.length) maxY += 30 + Math.max(...dlq.map(height)) + GAPY;
  const width = PAD * 2 + ncols * W + (ncols - 1) * GAPX;
  const svg = h('svg', { width, height: maxY + PAD, viewBox: `0 0 ${width} ${maxY + PAD}`, 'data-testid': 'job-graph' },
    h('defs', {}, h('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: 'auto-start-reverse' }, h('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#667085' }))));
  for (const e of j.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    if (e.dead_letter) {
      const x1 = a.x + W / 2, y1 = a.y + a.h, x2 = b.x + W / 2, y2 = b.y;
      svg.append(h('path', { class: 'edge dlq', 'marker-end': 'url(#arrow)', 'data-testid': 'edge',
        d: `M ${x1} ${y1} C ${x1} ${(y1 + y2) / 2}, ${x2} ${(y1 + y2) / 2}, ${x2} ${y2 - 2}` },
      h('title', {}, 'dead letters')));
      continue;
    }
    const x1 = a.x + W, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2, mx = (x1 + x2) / 2;
    svg.append(h('path', { class: 'edge', 'marker-end': 'url(#arrow)',
      d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 2} ${y2}`, 'data-testid': 'edge' }));
    svg.append(h('text', { class: 'edgelabel', x: mx, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle',
      'data-testid': 'edge-label' }, e.partitioning + (e.tag ? ` [${e.tag}]` : '')));
  }
  for (const v of j.vertices) {
    const p = pos.get(v.id);
    const g = h('g', { class: 'vbox', transform: `translate(${p.x},${p.y})`, 'data-testid': 'vertex',
      'data-vertex': v.id });
    const bp = v.backpressure || 0;
    g.append(
      h('title', {}, v.operators.map((o) => o.name + ' — ' + o.description).join('\n')),
      h('rect', { class: 'frame', width: W, height: p.h, rx: 6 }),
      h('rect', { class: 'head', x: 1, y: 1, width: W - 2, height: 22, rx: 5 }),
      h('text', { class: 'title', x: 8, y: 16, 'data-testid': 'vertex-name' }, clip(v.name, 30)),
      h('text', { class: 'small', x: W - 8, y: 16, 'text-anchor': 'end', 'data-testid': 'vertex-parallelism' },
        '×' + v.parallelism));
    let y = 38;
    for (const o of v.operators.slice(0, 4)) {
      g.append(h('text', { class: 'small', x: 8, y }, '▸ ' + clip(o.name, 36)));
      y += 14;
    }
    if (v.operators.length > 4) { g.lastChild.textContent += ` (+${v.operators.length - 4})`; }
    y += 2;
    g.append(h('text', { x: 8, y, 'data-testid': 'vertex-rates' }, v.is_source
      ? `read ${fmtRate(v.records_out_per_s)}` : `in ${fmtRate(v.records_in_per_s)}  out ${fmtRate(v.records_out_per_s)}`));
    y += 15;
    g.append(h('text', { x: 8, y, 'data-testid': 'vertex-busy' }, `busy ${fmtPct(v.busy)}  backpressured ${fmtPct(bp)}`));
    y += 7;
    g.append(h('rect', { class: 'bptrack', x: 8, y, width: W - 16, height: 5, rx: 2 }),
      h('rect', { class: 'bp' + (bp > 0.5 ? ' high' : bp > 0.1 ? ' mid' : ''), x: 8, y,
        width: Math.max(1, (W - 16) * bp), height: 5, rx: 2, 'data-testid': 'vertex-backpressure' }));
    y += 18;
    // A source's is the watermark it emits, any other vertex's that of its
    // input; no watermarks flow on the dead-letter stream. The lag on a line
    // of its own: both on one would not fit the box.
    const hasWm = !v.is_dead_letter_sink && v.watermark_ms !== null;
    g.append(h('text', { class: 'small', x: 8, y, 'data-testid': 'vertex-watermark' },
      'watermark ' + (v.is_dead_letter_sink ? 'n/a (dead letters)' : hasWm ? fmtTime(v.watermark_ms) : fmtWatermark(v))));
    y += 14;
    g.append(h('text', { class: 'small', x: 8, y, 'data-testid': 'vertex-watermark-lag' },
      hasWm ? 'lag ' + fmtMs(v.watermark_lag_ms) : ''));
    svg.append(g);
  }
  return h('div', { class: 'graph' }, svg);
}

function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }

function subtasks(j) {
  return h('table', { 'data-testid': 'subtasks-table' },
    h('thead', {}, h('tr', {}, ['Vertex', 'Subtask', 'Task manager', 'State', 'Records in', 'Records out', 'In/s',
      'Out/s', 'Busy', 'Backpressured', 'Dead letters', 'Watermark'].map((t, i) => h('th', { class: i >= 4 && i <= 10 ? 'num' : null }, t)))),
    h('tbody', {}, j.subtasks.map((t) => h('tr', {},
      h('td', {}, t.name), h('td', { class: 'num' }, t.subtask + 1), h('td', {}, t.taskmanager),
      h('td', {}, badge(t.state)), h('td', { class: 'num' }, fmtNum(t.records_in)),
      h('td', { class: 'num' }, fmtNum(t.records_out)), h('td', { class: 'num' }, fmtRate(t.records_in_per_s)),
      h('td', { class: 'num' }, fmtRate(t.records_out_per_s)), h('td', { class: 'num' }, fmtPct(t.busy)),
      h('td', { class: 'num' }, fmtPct(t.backpressure)), h('td', { class: 'num' }, fmtNum(t.dead_letters)),
      h('td', {}, fmtWatermark(t))))));
}

function checkpoints(j) {
  const c = j.checkpoints;
  const out = [h('div', { class: 'cards' },
    card('Completed', c.completed, 'cp-completed'), card('Failed', c.failed, 'cp-failed'),
    card('Latest', c.last_completed_id || '–', null), card('Last duration', fmtMs(c.last_duration_ms), null),
    card('Last size', fmtBytes(c.last_size_bytes), null), card('Last alignment', fmtMs(c.last_alignment_ms), null))];
  out.push(h('h2', {}, 'Latest restore'), j.restored_from
    ? h('p', { 'data-testid': 'latest-restore' }, `Attempt ${j.restored_from.attempt} started at ` +
      `${fmtTime(j.restored_from.time_ms)} from ${j.restored_from.savepoint ? 'savepoint' : 'checkpoint'} ` +
      `${j.restored_from.checkpoint_id}: ${j.restored_from.path}`)
    : h('p', { class: 'muted', 'data-testid': 'latest-restore' }, 'The current attempt started fresh (no restore).'));
  out.push(h('h2', {}, 'History'), c.history.length === 0 ? h('p', { class: 'muted' }, 'No checkpoint yet.') :
    h('table', { 'data-testid': 'checkpoints-table' },
      h('thead', {}, h('tr', {}, ['Id', 'Kind', 'Status', 'Triggered', 'Duration', 'Size', 'Alignment', 'Sync',
        'Acknowledged', 'Failure / path'].map((t, i) => h('th', { class: i >= 4 && i <= 8 ? 'num' : null }, t)))),
      h('tbody', {}, c.history.slice().reverse().map((e) => h('tr', { 'data-testid': 'checkpoint-row' },
        h('td', { class: 'num' }, e.id), h('td', {}, e.savepoint ? 'savepoint' : 'checkpoint'),
        h('td', {}, badge(e.status)), h('td', {}, fmtTime(e.trigger_ms)),
        h('td', { class: 'num' }, fmtMs(e.duration_ms)), h('td', { class: 'num' }, fmtBytes(e.size_bytes)),
        h('td', { class: 'num' }, fmtMs(e.alignment_ms)), h('td', { class: 'num' }, fmtMs(e.sync_ms)),
        h('td', { class: 'num' }, `${e.acknowledged} / ${e.tasks}`),
        h('td', { class: 'msg' }, e.failure || e.path))))));
  return out;
}

function failures(j) {
  const out = [h('p', {}, `${j.restarts} restart${j.restarts === 1 ? '' : 's'}.` +
    (j.last_failure ? ' Last failure: ' + j.last_failure : ''))];
  out.push(j.failures.length === 0 ? h('p', { class: 'muted' }, 'No failures.') :
    h('table', { 'data-testid': 'failures-table' },
      h('thead', {}, h('tr', {}, ['Time', 'Attempt', 'Task', 'Task manager', 'Outcome', 'Message'].map((t) => h('th', {}, t)))),
      h('tbody', {}, j.failures.slice().reverse().map((f) => h('tr', { 'data-testid': 'failure-row' },
        h('td', {}, fmtTime(f.time_ms)), h('td', { class: 'num' }, f.attempt), h('td', {}, f.task || '–'),
        h('td', {}, f.taskmanager || '–'),
        h('td', {}, f.permanent ? 'failed the job (permanent error)' : f.restarted ? 'restarted' : 'not restarted'),
        h('td', { class: 'msg' }, f.message))))));
  return out;
}

function kvList(obj) {
  const keys = Object.keys(obj);
  if (keys.length === 0) return h('p', { class: 'muted' }, 'none');
  return h('dl', { class: 'kv' }, keys.map((k) => [h('dt', {}, k), h('dd', {}, obj[k])]));
}

function config(j) {
  return [h('h2', {}, 'Job'), kvList({ library: j.library, 'graph hash': j.graph_hash, parallelism: j.parallelism,
    'checkpoint dir': j.checkpoints.dir }),
  h('h2', {}, 'Arguments (--arg)'), kvList(j.args), h('h2', {}, 'Configuration'), kvList(j.config)];
}

function logs(j) {
  const pre = h('pre', { class: 'log', 'data-testid': 'logs' }, 'Loading…');
  const load = async () => {
    try {
      const r = await read(`/jobs/${encodeURIComponent(j.id)}/logs?lines=300`);
      pre.textContent = r.logs.map((l) => `== ${l.source}${l.error ? ' (' + l.error + ')' : ''}\n` +
        l.lines.join('\n')).join('\n\n');
    } catch (e) {
      pre.textContent = 'Cannot read the logs: ' + e.message;
    }
  };
  load();
  return h('div', {}, h('p', {}, h('button', { type: 'button', onclick: load }, 'Reload'),
    ' The latest lines naming this job, from the jobmanager and the taskmanagers that run it.'), pre);
}

// ------------------------------------------------------------------ routing and polling

function parseRoute() {
  const m = location.hash.match(/^#\/jobs\/([A-Za-z0-9_-]+)/);
  if (m) return { page: 'job', id: m[1] };
  if (location.hash.startsWith('#/taskmanagers')) return { page: 'taskmanagers' };
  return { page: 'overview' };
}

async function refresh() {
  clearTimeout(timer);
  const gen = generation;
  const main = document.getElementById('main');
  try {
    if (route.page === 'overview') {
      const o = await read('/overview');
      if (gen === generation) renderOverview(main, o);
    } else if (route.page === 'taskmanagers') {
      const t = await read('/taskmanagers');
      if (gen === generation) renderTaskManagers(main, t);
    } else {
      const j = await read('/jobs/' + encodeURIComponent(route.id));
      if (gen === generation && (jobTab !== 'logs' || !main.querySelector('pre.log'))) renderJob(main, j);
    }
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    if (gen === generation) banner('Cannot reach the jobmanager: ' + e.message, 'error');
  }
  if (gen === generation) timer = setTimeout(refresh, POLL_MS);
}

function navigate() {
  generation++;
  route = parseRoute();
  if (route.page !== 'job') jobTab = 'graph';
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.nav === route.page);
  }
  refresh();
}

document.addEventListener('DOMContentLoaded', () => {
  updateAuth();
  document.getElementById('auth-button').addEventListener('click', () => {
    if (token) forgetToken(); else askToken();
  });
  document.getElementById('token-cancel').addEventListener('click', () => document.getElementById('token-dialog').close(''));
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    document.getElementById('token-dialog').close('ok');
  });
  window.addEventListener('hashchange', navigate);
  navigate();
});
