// Runs the dashboard's app.js (argv[2]) against a minimal DOM, a fake /v1/dashboard, a fake
// event stream and a fake preview route, and checks a running job's progress bar and preview.
// Run by Tests/ImageQueueServerTests/DashboardProgressTests.swift: node progress_harness.js app.js [token]
// With argv[3] = "token" the fake server protects reads (401 without the saved token), so the
// dashboard reads the stream with fetch, and the preview and the completed job's thumbnail must
// be read with the token too.
// With argv[3] = "pause" it checks the queue card's Pause button instead (token saved).
'use strict';
const fs = require('fs');
const vm = require('vm');

class Text { constructor(text) { this.text = String(text); this.parentNode = null; } get textContent() { return this.text; } }
class Element {
  constructor(tag) { this.tagName = tag.toUpperCase(); this.attributes = {}; this.childNodes = []; this.parentNode = null;
    this.style = {}; this.hidden = false; this.listeners = {}; this.value = ''; }
  get firstChild() { return this.childNodes[0] || null; }
  get children() { return this.childNodes.filter((c) => c instanceof Element); }
  appendChild(child) { if (child.parentNode) child.parentNode.removeChild(child); child.parentNode = this; this.childNodes.push(child); return child; }
  removeChild(child) { const i = this.childNodes.indexOf(child); if (i >= 0) this.childNodes.splice(i, 1); child.parentNode = null; return child; }
  remove() { if (this.parentNode) this.parentNode.removeChild(this); }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  getAttribute(name) { return name in this.attributes ? this.attributes[name] : null; }
  get className() { return this.attributes['class'] || ''; }
  set className(value) { this.attributes['class'] = String(value); }
  get classList() { const node = this; return {
    contains: (c) => node.className.split(/\s+/).includes(c),
    toggle: (c, on) => { const set = new Set(node.className.split(/\s+/).filter(Boolean)); if (on === undefined ? !set.has(c) : on) set.add(c); else set.delete(c); node.className = Array.from(set).join(' '); } }; }
  get textContent() { return this.childNodes.map((c) => c.textContent).join(''); }
  set textContent(text) { this.childNodes.forEach((c) => { c.parentNode = null; }); this.childNodes = [new Text(text)]; this.childNodes[0].parentNode = this; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  dispatchEvent(event) { (this.listeners[event.type] || []).forEach((fn) => fn(event)); }
  focus() {}
  matches(selector) {
    if (selector.startsWith('.')) return this.classList.contains(selector.slice(1));
    if (selector.startsWith('[')) return this.getAttribute(selector.slice(1, -1)) !== null;
    return this.tagName === selector.toUpperCase();
  }
  querySelectorAll(selector) { const found = []; const walk = (n) => n.children.forEach((c) => { if (c.matches(selector)) found.push(c); walk(c); }); walk(this); return found; }
  querySelector(selector) { return this.querySelectorAll(selector)[0] || null; }
}
let rows = 0;   // <tr> elements made: each render of Running now makes new ones
const byId = new Map();
const root = new Element('body');
const document = {
  title: '',
  createElement: (tag) => { if (tag === 'tr') rows += 1; return new Element(tag); },
  createTextNode: (text) => new Text(text),
  createElementNS: (ns, tag) => new Element(tag),
  getElementById: (id) => { if (!byId.has(id)) { const node = new Element('div'); node.setAttribute('id', id); byId.set(id, node); root.appendChild(node); } return byId.get(id); },
  querySelectorAll: (selector) => root.querySelectorAll(selector)
};

const TOKEN_MODE = process.argv[3] === 'token';
const PAUSE_MODE = process.argv[3] === 'pause';
let paused = false;
const TOKEN = 'harness-token-0123456789';
const JOB = 'flux-01jdx5w7k3q9m2v8r4t6y0z1ab';
const requests = [];
let snapshots = 0;
function reply(status, body, type) {
  return { ok: status >= 200 && status < 300, status, body: null,
           text: () => Promise.resolve(typeof body === 'string' ? body : JSON.stringify(body)),
           blob: () => Promise.resolve(new Blob([body], { type })) };
}
function fetch(path, init) {
  requests.push({ path: String(path), method: (init && init.method) || 'GET', headers: (init && init.headers) || {} });
  const url = String(path);
  const authorized = ((init && init.headers) || {})['Authorization'] === 'Bearer ' + TOKEN;
  if (TOKEN_MODE && !authorized) return Promise.resolve(reply(401, { error: { code: 'unauthorized', message: 'token' } }));
  if (url === 'v1/events') {
    const stream = new FetchStream();
    source = stream;
    return Promise.resolve({ ok: true, status: 200, body: stream });
  }
  if (url === 'v1/queues/flux/pause' && init && init.method === 'POST') {
    if (!authorized) return Promise.resolve(reply(401, { error: { code: 'unauthorized', message: 'token' } }));
    const changed = !paused;
    paused = true;
    return Promise.resolve(reply(200, { model: 'flux', paused: true, changed }));
  }
  if (url === 'v1/dashboard') {
    snapshots += 1;
    return Promise.resolve(reply(200, {
      generated_at: Date.now(),
      queues: { flux: { pending: 0, active: 1, dead: 0, concurrency: 1, completed_total: 0, failed_total: 0, paused } },
      workers: [{ id: 'w1', host: 'h', pid: 1, models: ['flux'], current_jobs: [JOB], started_at: Date.now(), heartbeat_at: Date.now() }],
      running: [{ id: JOB, model: 'flux', status: 'generating', attempt: 1, max_attempts: 3, prompt: 'a lighthouse', user: 'alice',
                  worker: 'w1', enqueued_at: Date.now() - 5000, started_at: Date.now() - 4000 }],
      recent: [], failed: []
    }));
  }
  const preview = url.match(/^v1\/jobs\/([^/]+)\/preview\?rev=(\d+)$/);
  if (preview) return Promise.resolve(reply(200, 'png of rev ' + preview[2], 'image/png'));
  if (url.startsWith('v1/jobs/')) return Promise.resolve(reply(200, { id: JOB, model: 'flux', status: 'generating', prompt: 'a lighthouse' }));
  return Promise.resolve(reply(404, { error: { code: 'not_found', message: 'no' } }));
}
let source = null;
class EventSource {
  constructor(url) { this.url = url; this.readyState = 1; this.listeners = {}; source = this; setTimeout(() => this.onopen && this.onopen(), 0); }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  close() { this.readyState = 2; }
  emit(type, data) { (this.listeners[type] || []).forEach((fn) => fn({ data: typeof data === 'string' ? data : JSON.stringify(data) })); }
}
// The fetch-read stream (token mode): emit() queues SSE blocks for the reader.
class FetchStream {
  constructor() { this.chunks = []; this.waiting = null; }
  getReader() { return { read: () => this.chunks.length ? Promise.resolve({ done: false, value: this.chunks.shift() })
                                                         : new Promise((resolve) => { this.waiting = resolve; }) }; }
  emit(type, data) {
    const chunk = new TextEncoder().encode('event: ' + type + '\ndata: ' + (typeof data === 'string' ? data : JSON.stringify(data)) + '\n\n');
    if (this.waiting) { const resolve = this.waiting; this.waiting = null; resolve({ done: false, value: chunk }); }
    else this.chunks.push(chunk);
  }
}
let blobs = 0;
const revoked = [];
URL.createObjectURL = () => 'blob:preview-' + (++blobs);
URL.revokeObjectURL = (url) => { revoked.push(url); };

// The token is kept in sessionStorage (the tab's session); localStorage must not hold it.
const localRemoved = [];
Object.assign(globalThis, { document, fetch, EventSource, window: globalThis,
  sessionStorage: { getItem: () => (TOKEN_MODE || PAUSE_MODE ? TOKEN : null), setItem() {}, removeItem() {} },
  localStorage: { getItem: () => { throw new Error('the token is read from localStorage'); },
                  setItem: () => { throw new Error('the token is written to localStorage'); },
                  removeItem: (key) => { localRemoved.push(key); } } });
globalThis.Event = class { constructor(type) { this.type = type; } };
vm.runInThisContext(fs.readFileSync(process.argv[2], 'utf8'), { filename: 'app.js' });

async function until(what, check) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what + '; running-body: ' + describe(byId.get('running-body')));
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
function describe(node) {
  if (!node) return '(none)';
  if (node instanceof Text) return JSON.stringify(node.text);
  const attrs = Object.keys(node.attributes).map((k) => k + '=' + JSON.stringify(node.attributes[k])).join(' ');
  const extra = node.tagName === 'IMG' ? ' src=' + JSON.stringify(node.src || '') + (node.hidden ? ' hidden' : '') : '';
  return '<' + node.tagName.toLowerCase() + (attrs ? ' ' + attrs : '') + extra + '>' + node.childNodes.map(describe).join('') + '</>';
}
function check(condition, message) { if (!condition) throw new Error(message + '; running-body: ' + describe(byId.get('running-body'))); }
const row = () => byId.get('running-body') && byId.get('running-body').querySelector('tr');
const bar = () => row() && row().querySelector('progress');
const img = () => row() && row().querySelector('.preview');
const previewFetches = () => requests.filter((r) => r.path.includes('/preview'));
let rev = 4;
const event = (extra) => Object.assign({ v: 1, id: JOB, model: 'flux', status: 'generating', time: Date.now(), attempt: 1, rev: ++rev, worker: 'w1' }, extra);

const pauseButton = () => byId.get('queues') && byId.get('queues').querySelector('[data-action]');

async function pauseChecks() {
  await until('the flux queue card with a Pause button', () => pauseButton() && pauseButton().getAttribute('data-action') === 'pause');
  check(!byId.get('queues').textContent.includes('paused'), 'not marked paused before the click');
  const before = snapshots;
  pauseButton().dispatchEvent({ type: 'click' });
  await until('the pause request', () => requests.some((r) => r.method === 'POST' && r.path === 'v1/queues/flux/pause'));
  const sent = requests.find((r) => r.method === 'POST' && r.path === 'v1/queues/flux/pause');
  check(sent.headers['Authorization'] === 'Bearer ' + TOKEN, 'the pause is sent with the saved token');
  await until('a fresh snapshot after the pause', () => snapshots > before);
  await until('the card marked paused with a Resume button', () => pauseButton() && pauseButton().getAttribute('data-action') === 'resume'
    && byId.get('queues').textContent.includes('paused'));
  console.log('dashboard pause OK');
  process.exit(0);
}

(async () => {
  if (PAUSE_MODE) return pauseChecks();
  await until('the snapshot and the stream', () => source && snapshots >= 1 && row());
  check(!bar() && !img(), 'no progress bar or preview before any progress event');

  source.emit('status', event({ progress: 0.456 }));
  await until('a progress bar at 45', () => bar() && bar().getAttribute('value') === '45');
  check(bar().getAttribute('max') === '100', 'the bar goes to 100');
  check(bar().getAttribute('aria-label'), 'the bar has an accessible name');
  check(row().textContent.includes('45 %'), 'the percentage is shown as text');
  check(!img() && previewFetches().length === 0, 'no preview before a preview event');

  source.emit('status', event({ progress: 0.29 }));
  await until('29 %, not 28', () => bar() && bar().getAttribute('value') === '29');

  source.emit('status', event({ progress: 0.5, preview: true }));
  const first = rev;
  await until('the preview fetched and shown', () => img() && !img().hidden && img().src === 'blob:preview-1');
  check(previewFetches().map((r) => r.path).join() === 'v1/jobs/' + JOB + '/preview?rev=' + first, 'the preview is read with ?rev= of its event: ' + JSON.stringify(previewFetches()));
  if (TOKEN_MODE) check(previewFetches()[0].headers['Authorization'] === 'Bearer ' + TOKEN, 'with protected reads the preview is read with the token');

  // Progress without a new preview: the same image, nothing fetched again, even across
  // renders and a fresh snapshot (whose job objects carry no progress).
  source.emit('status', event({ progress: 0.6 }));
  await until('60 %', () => bar() && bar().getAttribute('value') === '60');
  const before = snapshots, rendered = rows;
  source.emit('resync', '{}');
  // Nothing else renders meanwhile: a new row after the snapshot's answer is its render.
  await until('a new snapshot rendered', () => snapshots > before && rows > rendered);
  await until('the bar kept after the snapshot', () => bar() && bar().getAttribute('value') === '60');
  check(img() && img().src === 'blob:preview-1', 'the preview kept after the snapshot');
  check(previewFetches().length === 1, 'the preview is not fetched again without a new preview event: ' + previewFetches().length);

  source.emit('status', event({ progress: 0.7, preview: true }));
  const second = rev;
  await until('the newer preview', () => img() && img().src === 'blob:preview-2');
  check(previewFetches().length === 2 && previewFetches()[1].path.endsWith('?rev=' + second), 'the newer preview is fetched once');
  check(revoked.includes('blob:preview-1'), 'the older blob URL is released');

  source.emit('status', event({ status: 'completed', progress: undefined, result: { content_type: 'image/png', bytes: 3, store: 'redis', key: 'k' } }));
  await until('the job leaves Running now', () => !row());
  check(revoked.includes('blob:preview-2'), 'the preview is released once the job ends');
  if (TOKEN_MODE) {
    // Its thumbnail among the completions: an <img> cannot send the token, so the image is
    // fetched with it and shown from a blob URL.
    const image = () => requests.find((r) => r.path === 'v1/jobs/' + JOB + '/image');
    await until('the thumbnail fetched', () => image());
    check(image().headers['Authorization'] === 'Bearer ' + TOKEN, 'with protected reads the thumbnail is read with the token');
    await until('the thumbnail shown from its blob', () => root.querySelectorAll('img').some((i) =>
      String(i.src || '').startsWith('blob:') && (i.getAttribute('alt') || '').startsWith('Image for')));
  }
  console.log('dashboard progress OK' + (TOKEN_MODE ? ' (protected reads)' : ''));
  process.exit(0);
})().catch((error) => { console.error(String(error && error.stack || error)); process.exit(1); });
