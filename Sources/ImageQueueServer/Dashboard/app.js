// The dashboard's script (index.html beside it says how the files are served and what it reads).
(function () {
  'use strict';

  var TOKEN_KEY = 'imagequeue.apiToken';
  var RUNNING = { enhancing: true, generating: true, retrying: true };
  var MAX_SHOWN = 24;
  var RECONCILE_MS = 5000;
  var MODEL_COLORS = ['#4f46e5', '#0e9384', '#d92d20', '#dc6803', '#7a5af8', '#1570ef', '#c11574', '#4e5ba6'];

  // The page is the dashboard at `/`, or one job's page at `/jobs/{id}` (the same files). Every
  // request is relative to the dashboard's folder (ROOT), so a path prefix in front works too.
  var PAGE_PATH = (window.location && window.location.pathname) || '/';
  var JOB_MATCH = /\/jobs\/([^\/]+)$/.exec(PAGE_PATH);
  var JOB_ID = null;
  if (JOB_MATCH) { try { JOB_ID = decodeURIComponent(JOB_MATCH[1]); } catch (e) { JOB_ID = JOB_MATCH[1]; } }
  var ROOT = JOB_MATCH ? '../' : '';
  var JOB_ID_PATTERN = /^[a-z0-9_]{1,32}-[A-Za-z0-9_.-]{1,127}$/;
  var TERMINAL = { completed: true, failed: true, cancelled: true };

  var state = {
    queues: {},          // model -> stats (counts adjusted live between snapshots)
    oldestSince: {},     // model -> server ms the oldest pending job has waited since (null = none)
    workers: [],
    jobs: new Map(),     // id -> job record (status object + live fields)
    clockOffset: 0,      // server ms - browser ms
    lastSync: 0,         // browser ms of the last applied snapshot
    readAuth: false,     // reads need the token (server runs with --protect-reads)
    token: '',
    conn: 'connecting'
  };
  // The API token lives in this tab's sessionStorage only (gone when the tab closes); an older
  // dashboard's copy in localStorage is removed.
  try { state.token = window.sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { state.token = ''; }
  try { if (window.localStorage) window.localStorage.removeItem(TOKEN_KEY); } catch (e) { /* not available */ }

  var $ = function (id) { return document.getElementById(id); };
  function serverNow() { return Date.now() + state.clockOffset; }

  // ---------------------------------------------------------------- DOM helpers (text only)
  // el('div', {class: 'x', title: t}, child...) — strings become text nodes, never HTML.
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      for (var key in attrs) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'onclick') node.addEventListener('click', value);
        else node.setAttribute(key, String(value));
      }
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  function replaceChildren(node, children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    append(node, children);
  }

  // ---------------------------------------------------------------- formatting
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function clock(ms) {               // ticking timer: 0:07, 12:34, 1:02:03
    if (ms === null || ms === undefined || !isFinite(ms)) return '–';
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + ':' + pad2(m) + ':' + pad2(s % 60) : m + ':' + pad2(s % 60);
  }
  function human(ms) {               // an age: 12 s, 4 min, 2 h 5 min, 3 d 4 h
    if (ms === null || ms === undefined || !isFinite(ms)) return '–';
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min';
    var h = Math.floor(m / 60);
    if (h < 24) return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : '');
    var d = Math.floor(h / 24);
    return d + ' d' + (h % 24 ? ' ' + (h % 24) + ' h' : '');
  }
  function ago(ms) {
    if (ms === null || ms === undefined || !isFinite(ms)) return '–';
    return ms < 2000 ? 'just now' : human(ms) + ' ago';
  }
  function took(ms) {                // duration of a job: 3.2 s, 45 s, 2 min 5 s
    if (ms === null || ms === undefined || !isFinite(ms) || ms < 0) return '–';
    if (ms < 10000) return (ms / 1000).toFixed(1) + ' s';
    var s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min' + (s % 60 ? ' ' + (s % 60) + ' s' : '');
    return human(ms);
  }
  function shortId(id) {
    id = String(id || '');
    var dash = id.indexOf('-');
    var suffix = dash >= 0 ? id.slice(dash + 1) : id;
    return suffix.length > 10 ? '…' + suffix.slice(-8) : suffix;
  }
  function plural(n, one, many) { return n === 1 ? one : many; }
  function modelColor(model) {
    var h = 0;
    for (var i = 0; i < model.length; i++) h = (h * 31 + model.charCodeAt(i)) >>> 0;
    return MODEL_COLORS[h % MODEL_COLORS.length];
  }
  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  // ---------------------------------------------------------------- HTTP
  function authHeaders(needToken) {
    var headers = { 'Accept': 'application/json' };
    if ((needToken || state.readAuth) && state.token) headers['Authorization'] = 'Bearer ' + state.token;
    return headers;
  }
  // An event stream read with fetch (EventSource cannot send the token) sends it whenever it
  // is known.
  function streamHeaders() {
    var headers = { 'Accept': 'text/event-stream' };
    if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
    return headers;
  }
  function api(path, options) {
    options = options || {};
    var headers = authHeaders(options.auth);
    var init = { method: options.method || 'GET', headers: headers, cache: 'no-store' };
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    return fetch(ROOT + path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: res.ok, status: res.status, data: data };
      });
    });
  }
  function errorText(r) {
    var e = r && r.data && r.data.error;
    if (e && e.message) return e.message + (e.code ? ' (' + e.code + ')' : '');
    return 'HTTP ' + (r ? r.status : '?');
  }
  function jobPath(id) { return 'v1/jobs/' + encodeURIComponent(id); }
  function jobPageURL(id) { return ROOT + 'jobs/' + encodeURIComponent(id); }

  // ---------------------------------------------------------------- notices
  var banners = new Map();
  function setBanner(key, text, kind) {
    if (text) banners.set(key, { text: text, kind: kind || 'warn' });
    else banners.delete(key);
    var box = $('banner');
    var first = null;
    banners.forEach(function (b) { if (!first || (b.kind === 'error' && first.kind !== 'error')) first = b; });
    if (!first) { box.hidden = true; return; }
    box.hidden = false;
    box.className = 'banner' + (first.kind === 'error' ? ' error' : '');
    box.textContent = first.text;
  }
  function toast(text, kind) {
    var t = el('div', { class: 'toast' + (kind ? ' ' + kind : ''), role: 'status', text: text });
    $('toasts').appendChild(t);
    setTimeout(function () { if (t.parentNode) t.parentNode.removeChild(t); }, 5000);
  }

  // ---------------------------------------------------------------- token form
  var afterToken = null;
  function askToken(reason, then) {
    afterToken = then || null;
    var title = 'API token', text, error = '';
    if (reason === 'read') {
      title = 'This server needs a token to show the queue';
      text = 'Reads are protected (--protect-reads). Enter the API token (IMAGEQUEUE_API_TOKEN); it is kept for this tab only (sessionStorage) until the tab closes.';
    } else if (reason === 'read-rejected') {
      title = 'This server needs a token to show the queue';
      text = 'Enter the API token (IMAGEQUEUE_API_TOKEN); it is kept for this tab only (sessionStorage) until the tab closes.';
      error = 'The saved token was rejected (401 Unauthorized). Enter the current token.';
    } else if (reason === 'rejected') {
      title = 'The API token was rejected';
      text = 'Enqueueing, cancelling, retrying and purging jobs, pausing queues and setting concurrency need the API token (IMAGEQUEUE_API_TOKEN). It is kept for this tab only (sessionStorage) until the tab closes.';
      error = 'The server rejected this token (401 Unauthorized). Check the token and enter it again.';
    } else {
      if (reason === 'write') title = 'Enter the API token to retry jobs';
      text = 'Enqueueing, cancelling, retrying and purging jobs, pausing queues and setting concurrency need the API token (IMAGEQUEUE_API_TOKEN). It is kept for this tab only (sessionStorage) until the tab closes.';
    }
    $('token-title').textContent = title;
    $('token-text').textContent = text;
    $('token-error').textContent = error;
    $('token-error').hidden = !error;
    $('token-forget').hidden = !state.token;
    $('token-input').value = '';
    $('token-form').hidden = false;
    $('token-input').focus();
  }
  function saveToken(token) {
    state.token = token;
    try {
      if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
      else window.sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: keep it in memory */ }
    renderTokenButton();
  }
  function renderTokenButton() {
    $('token-button').textContent = state.token ? 'API token ✓' : 'API token';
    $('token-button').title = state.token ? 'A token is kept for this tab' : 'Enter the API token (needed to change anything)';
  }
  $('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var value = $('token-input').value.trim();
    if (!value) { $('token-input').focus(); return; }
    saveToken(value);
    $('token-form').hidden = true;
    var then = afterToken; afterToken = null;
    if (state.readAuth) {
      if (JOB_ID) { loadJob(); startJobStream(); } else { startStream(); loadSnapshot(); loadStats(); }
    }
    if (then) then();
  });
  $('token-cancel').addEventListener('click', function () { $('token-form').hidden = true; afterToken = null; });
  $('token-forget').addEventListener('click', function () {
    saveToken('');
    $('token-form').hidden = true;
    toast('The token was removed from this tab.');
  });
  $('token-button').addEventListener('click', function () { askToken('manual'); });

  // ---------------------------------------------------------------- snapshot
  var snapshot = { inFlight: false, again: false, startedAt: 0, buffer: null, retryTimer: null };

  function loadSnapshot() {
    if (snapshot.inFlight) { snapshot.again = true; return; }
    snapshot.inFlight = true;
    snapshot.again = false;
    snapshot.startedAt = Date.now();
    snapshot.buffer = [];
    var sentAt = Date.now();
    var switched = false;
    api('v1/dashboard').then(function (r) {
      if (r.status === 401 && !state.readAuth) {
        state.readAuth = true;       // the server protects reads: send the token from now on
        switched = true;
        sentAt = Date.now();
        if (state.token) return api('v1/dashboard');
      }
      return r;
    }).then(function (r) {
      if (r.status === 401) {
        stopStream();
        setConn('unauthorized');
        setBanner('snapshot', null);
        askToken(state.token ? 'read-rejected' : 'read');
        return;
      }
      // The stream opens after the first snapshot answers (and again in token mode).
      if (switched || !stream.started) startStream();
      if (!r.ok || !r.data) {
        var code = r.data && r.data.error && r.data.error.code;
        setBanner('snapshot', (code === 'redis_unavailable' ? 'Redis is unavailable: ' : 'Could not load the dashboard: ') + errorText(r) + ' — retrying.', 'error');
        retrySnapshotSoon();
        return;
      }
      var receivedAt = Date.now();
      applySnapshot(r.data, (sentAt + receivedAt) / 2, snapshot.buffer || []);
      setBanner('snapshot', null);
    }).catch(function () {
      setBanner('snapshot', 'Cannot reach the ImageQueue server — retrying.', 'error');
      if (!stream.started) startStream();
      retrySnapshotSoon();
    }).then(function () {
      snapshot.inFlight = false;
      snapshot.buffer = null;
      if (snapshot.again) scheduleReconcile();
    });
  }
  function retrySnapshotSoon() {
    if (snapshot.retryTimer) return;
    snapshot.retryTimer = setTimeout(function () { snapshot.retryTimer = null; loadSnapshot(); }, 5000);
  }

  function applySnapshot(data, localMidpoint, replay) {
    if (isNum(data.generated_at)) state.clockOffset = data.generated_at - localMidpoint;
    var at = isNum(data.generated_at) ? data.generated_at : serverNow();
    state.queues = {};
    state.oldestSince = {};
    var queues = data.queues || {};
    Object.keys(queues).forEach(function (model) {
      var q = queues[model] || {};
      state.queues[model] = {
        pending: q.pending || 0, active: q.active || 0, dead: q.dead || 0,
        concurrency: isNum(q.concurrency) ? q.concurrency : null,
        completed_total: q.completed_total || 0, failed_total: q.failed_total || 0,
        paused: q.paused === true
      };
      state.oldestSince[model] = isNum(q.oldest_pending_age_ms) ? at - q.oldest_pending_age_ms : null;
    });
    state.workers = Array.isArray(data.workers) ? data.workers.map(function (w) {
      var copy = Object.assign({}, w);
      copy.current_jobs = Array.isArray(w.current_jobs) ? w.current_jobs.slice() : [];
      copy.models = Array.isArray(w.models) ? w.models : [];
      return copy;
    }) : [];

    var old = state.jobs;
    var jobs = new Map();
    [].concat(data.running || [], data.recent || [], data.failed || []).forEach(function (j) {
      if (!j || !j.id) return;
      var record = Object.assign({}, j);
      var before = old.get(j.id);
      if (before && before.status === j.status) {
        if (before.retry) record.retry = before.retry;
        if (before.enhancement) record.enhancement = before.enhancement;
        if (isNum(before.rev)) record.rev = before.rev;
        // Live fields that only events carry (the snapshot's job objects have none).
        if (isNum(before.progress)) record.progress = before.progress;
        if (isNum(before.previewRev)) record.previewRev = before.previewRev;
      }
      record.detailed = true;
      record.stateTime = stateTimeOf(record);
      jobs.set(j.id, record);
    });
    // Queued jobs are not in the snapshot; keep the ones we know of so later events
    // move counts correctly.
    old.forEach(function (j, id) { if (!jobs.has(id) && j.status === 'queued') jobs.set(id, j); });
    state.jobs = jobs;
    // Events that arrived while the snapshot was in flight are newer than (or equal to) it.
    replay.forEach(function (ev) { applyEvent(ev, false); });
    state.lastSync = Date.now();
    scheduleRender();
  }
  function stateTimeOf(job) {
    if (job.status === 'completed' || job.status === 'failed' || job.status === 'cancelled') return job.finished_at || 0;
    if (RUNNING[job.status]) return job.started_at || 0;
    return job.enqueued_at || 0;
  }

  // Reconcile counts and workers with a fresh snapshot, at most every 5 s while events flow.
  var reconcileTimer = null;
  function scheduleReconcile() {
    if (reconcileTimer) return;
    var wait = Math.max(1200, RECONCILE_MS - (Date.now() - snapshot.startedAt));
    reconcileTimer = setTimeout(function () { reconcileTimer = null; loadSnapshot(); }, wait);
  }

  // ---------------------------------------------------------------- events
  function bucketOf(status) {
    if (status === 'queued') return 'pending';
    if (RUNNING[status]) return 'active';
    if (status === 'failed') return 'dead';
    return null;
  }
  function guessPrevious(status, ev) {
    if (status === 'enhancing' || status === 'generating' || status === 'cancelled') return 'pending';
    if (status === 'retrying' || status === 'completed') return 'active';
    if (status === 'failed') return (ev.attempt || 0) > 0 ? 'active' : 'pending';
    return null;
  }
  function adjustCounts(model, previous, ev) {
    var q = state.queues[model];
    if (!q) return;
    var from = previous ? bucketOf(previous) : guessPrevious(ev.status, ev);
    var to = bucketOf(ev.status);
    if (from !== to) {
      if (from) q[from] = Math.max(0, q[from] - 1);
      if (to) q[to] += 1;
    }
    if (ev.status === 'completed' && previous !== 'completed') q.completed_total += 1;
    if (ev.status === 'failed' && previous !== 'failed') q.failed_total += 1;
    if (q.pending === 0) state.oldestSince[model] = null;
    else if (to === 'pending' && state.oldestSince[model] == null) state.oldestSince[model] = isNum(ev.time) ? ev.time : serverNow();
  }

  function applyEvent(ev, live) {
    if (!ev || typeof ev.id !== 'string' || typeof ev.status !== 'string') return;
    var job = state.jobs.get(ev.id);
    if (job) {
      if (isNum(job.rev) && isNum(ev.rev) && ev.rev <= job.rev) return;           // already seen
      if (!isNum(job.rev) && isNum(ev.time) && ev.time < (job.stateTime || 0)) return; // older than the snapshot
    }
    var previous = job ? job.status : null;
    if (!job) {
      job = { id: ev.id, model: ev.model || ev.id.split('-')[0], detailed: false };
      state.jobs.set(ev.id, job);
    }
    var wasRunning = !!RUNNING[previous];
    job.status = ev.status;
    if (ev.model) job.model = ev.model;
    if (isNum(ev.rev)) job.rev = ev.rev;
    if (isNum(ev.attempt)) job.attempt = ev.attempt;
    job.stateTime = isNum(ev.time) ? ev.time : serverNow();
    if (typeof ev.enhanced_prompt === 'string' && ev.enhanced_prompt) job.enhanced_prompt = ev.enhanced_prompt;
    if (ev.worker) job.worker = ev.worker;
    if (ev.result) job.result = ev.result;
    if (ev.error) job.error = ev.error;
    if (ev.enhancement) job.enhancement = ev.enhancement;
    // Live progress (0 to 1) and the preview's revision, while generating.
    if (ev.status === 'generating' && isNum(ev.progress)) job.progress = Math.max(0, Math.min(1, ev.progress));
    else if (ev.status !== 'generating') job.progress = null;
    if (ev.status === 'generating' && ev.preview === true && isNum(ev.rev)) job.previewRev = ev.rev;
    else if (!RUNNING[ev.status]) job.previewRev = null;
    job.retry = ev.status === 'retrying' ? (ev.retry || job.retry || null) : null;
    if (RUNNING[ev.status]) {
      if (!wasRunning || !isNum(job.started_at)) job.started_at = job.stateTime;
      job.finished_at = null;
      job.position = null;
    } else if (ev.status === 'queued') {
      job.position = isNum(ev.position) ? ev.position : null;
      job.started_at = null;
      job.finished_at = null;
      job.worker = null;
    } else {
      job.finished_at = job.stateTime;
      job.position = null;
      if (ev.status === 'completed') job.error = null;
    }
    if (live) adjustCounts(job.model, previous, ev);
    if (live && (ev.status === 'completed' || ev.status === 'failed')) scheduleStats();
    if (!job.detailed && (RUNNING[ev.status] || ev.status === 'completed' || ev.status === 'failed')) fetchDetail(job.id);
    scheduleRender();
  }

  function onStreamData(text) {
    var ev;
    try { ev = JSON.parse(text); } catch (e) { return; }
    if (!ev || typeof ev !== 'object') return;
    if (snapshot.buffer) snapshot.buffer.push(ev);
    applyEvent(ev, true);
    scheduleReconcile();
  }

  // Details (prompt, enqueue time...) of jobs first seen through an event.
  var details = { queue: [], pending: new Set(), active: 0 };
  function fetchDetail(id) {
    if (details.pending.has(id)) return;
    details.pending.add(id);
    details.queue.push(id);
    pumpDetails();
  }
  function pumpDetails() {
    while (details.active < 4 && details.queue.length) {
      var id = details.queue.shift();
      details.active += 1;
      (function (id) {
        api(jobPath(id)).then(function (r) { if (r.ok && r.data) mergeDetail(r.data); })
          .catch(function () {})
          .then(function () { details.active -= 1; details.pending.delete(id); pumpDetails(); });
      })(id);
    }
  }
  function mergeDetail(d) {
    var job = state.jobs.get(d.id);
    if (!job) return;
    ['prompt', 'user', 'enhance', 'enqueued_at', 'max_attempts', 'metadata'].forEach(function (k) {
      if (d[k] !== undefined) job[k] = d[k];
    });
    ['enhanced_prompt', 'worker', 'result', 'error', 'started_at', 'finished_at'].forEach(function (k) {
      if (d[k] === null || d[k] === undefined) return;
      if (d.status === job.status || job[k] === null || job[k] === undefined) job[k] = d[k];
    });
    job.detailed = true;
    scheduleRender();
  }

  // ---------------------------------------------------------------- event stream
  var stream = { source: null, abort: null, started: false, everOpen: false, backoff: 1000, timer: null };

  function setConn(value) {
    state.conn = value;
    var labels = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', unauthorized: 'Token needed', offline: 'Offline',
                   ended: 'Final state' };
    $('conn').setAttribute('data-state', value);
    $('conn-label').textContent = labels[value] || value;
    scheduleRender();
  }
  function stopStream() {
    if (stream.timer) { clearTimeout(stream.timer); stream.timer = null; }
    if (stream.source) { stream.source.close(); stream.source = null; }
    if (stream.abort) { stream.abort.abort(); stream.abort = null; }
  }
  function startStream() {
    stopStream();
    stream.started = true;
    setConn(stream.everOpen ? 'reconnecting' : 'connecting');
    if (state.readAuth) {
      if (!state.token) { setConn('unauthorized'); return; }
      startFetchStream();
    } else if (window.EventSource) {
      startEventSource();
    } else {
      startFetchStream();
    }
  }
  function streamOpened() {
    var reconnected = stream.everOpen && state.conn !== 'live';
    stream.everOpen = true;
    stream.backoff = 1000;
    setConn('live');
    setBanner('stream', null);
    // Events may have been missed while the stream was down (or before it first opened).
    if (reconnected) loadSnapshot(); else scheduleReconcile();
  }
  function streamLost() {
    if (stream.source) { stream.source.close(); stream.source = null; }
    stream.abort = null;
    if (state.conn !== 'unauthorized') setConn('reconnecting');
    var wait = stream.backoff;
    stream.backoff = Math.min(stream.backoff * 2, 30000);
    if (stream.timer) clearTimeout(stream.timer);
    stream.timer = setTimeout(function () {
      stream.timer = null;
      loadSnapshot();          // also finds out whether reads now need the token
      startStream();
    }, wait);
  }
  function startEventSource() {
    var source = new EventSource(ROOT + 'v1/events');
    stream.source = source;
    source.onopen = function () { if (stream.source === source) streamOpened(); };
    source.addEventListener('status', function (e) { if (stream.source === source) onStreamData(e.data); });
    source.addEventListener('resync', function () { if (stream.source === source) loadSnapshot(); });
    source.onerror = function () {
      if (stream.source !== source) return;
      if (source.readyState === 2) streamLost();          // CLOSED: the browser gave up (e.g. 401)
      else setConn('reconnecting');                        // CONNECTING: the browser retries itself
    };
  }
  // With protected reads EventSource cannot send the token: read the stream with fetch.
  function startFetchStream() {
    var controller = new AbortController();
    stream.abort = controller;
    var headers = streamHeaders();
    fetch(ROOT + 'v1/events', { headers: headers, cache: 'no-store', signal: controller.signal }).then(function (res) {
      if (res.status === 401) {
        stream.abort = null;
        setConn('unauthorized');
        askToken('read-rejected');
        return null;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      streamOpened();
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buffer = '';
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error('stream ended');
          buffer += decoder.decode(chunk.value, { stream: true });
          buffer = buffer.replace(/\r\n?/g, '\n');
          var end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            dispatchBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      if (controller.signal.aborted || stream.abort !== controller) return;
      streamLost();
    });
  }
  // One SSE block: its `status` data goes to `handler` (the dashboard's by default).
  function dispatchBlock(block, handler) {
    var type = 'message', data = [];
    block.split('\n').forEach(function (line) {
      if (!line || line.charAt(0) === ':') return;
      var colon = line.indexOf(':');
      var field = colon < 0 ? line : line.slice(0, colon);
      var value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.charAt(0) === ' ') value = value.slice(1);
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    });
    if (type === 'status' && data.length) (handler || onStreamData)(data.join('\n'));
    else if (type === 'resync' && !handler) loadSnapshot();
  }

  // ---------------------------------------------------------------- retry
  var retrying = new Set();
  var retryNotes = new Map();   // job id -> why the last retry did not happen
  function retryJob(id) {
    var job = state.jobs.get(id);
    if (!job) return;
    if (!state.token) { askToken('write', function () { retryJob(id); }); return; }
    retrying.add(id);
    retryNotes.delete(id);
    scheduleRender();
    api('v1/dead/' + encodeURIComponent(job.model) + '/retry', { method: 'POST', body: { id: id }, auth: true }).then(function (r) {
      if (r.status === 401) {
        retryNotes.set(id, 'Not retried: the API token was rejected (401).');
        toast('Retry refused: the server rejected the API token (401 Unauthorized).', 'error');
        askToken('rejected', function () { retryJob(id); });
        return;
      }
      if (r.status === 404) {
        toast(job.model + ' job ' + shortId(id) + ' is no longer in the dead list.');
        loadSnapshot();
        return;
      }
      if (!r.ok) {
        retryNotes.set(id, 'Not retried: ' + errorText(r));
        toast('Retry failed: ' + errorText(r), 'error');
        return;
      }
      var count = r.data && isNum(r.data.retried) ? r.data.retried : 1;
      if (count > 0) toast('Requeued ' + job.model + ' job ' + shortId(id) + '.', 'success');
      else toast('Nothing was requeued for ' + job.model + ' job ' + shortId(id) + ' (the server answered retried: 0).', 'error');
      loadSnapshot();   // the job leaves the failed list (its `queued` event may already have)
    }).catch(function () {
      retryNotes.set(id, 'Not retried: the server could not be reached.');
      toast('Retry failed: the server could not be reached.', 'error');
    }).then(function () {
      retrying.delete(id);
      scheduleRender();
    });
  }

  // ---------------------------------------------------------------- pause and resume
  var pausing = new Set();   // models with a pause or resume on its way
  function pauseButton(model, paused) {
    var busy = pausing.has(model);
    var label = busy ? (paused ? 'Resuming…' : 'Pausing…') : (paused ? 'Resume' : 'Pause');
    return el('button', { type: 'button', class: 'btn small ghost', disabled: busy, 'data-action': paused ? 'resume' : 'pause',
                          'aria-label': label + ' ' + model,
                          title: paused ? 'Let workers claim ' + model + ' jobs again' : 'Stop every worker from claiming ' + model + ' jobs (running jobs finish)',
                          onclick: function () { setPaused(model, !paused); } }, label);
  }
  function setPaused(model, pause) {
    if (!state.token) { askToken('write', function () { setPaused(model, pause); }); return; }
    pausing.add(model);
    scheduleRender();
    var verb = pause ? 'pause' : 'resume';
    api('v1/queues/' + encodeURIComponent(model) + '/' + verb, { method: 'POST', auth: true }).then(function (r) {
      if (r.status === 401) {
        toast('Not ' + (pause ? 'paused' : 'resumed') + ': the server rejected the API token (401 Unauthorized).', 'error');
        askToken('rejected', function () { setPaused(model, pause); });
        return;
      }
      if (!r.ok) { toast('Could not ' + verb + ' ' + model + ': ' + errorText(r), 'error'); return; }
      if (state.queues[model]) state.queues[model].paused = pause;
      toast(model + (pause ? ' is paused: no new jobs start.' : ' is running again.'), 'success');
      loadSnapshot();
    }).catch(function () {
      toast('Could not ' + verb + ' ' + model + ': the server could not be reached.', 'error');
    }).then(function () {
      pausing.delete(model);
      scheduleRender();
    });
  }

  // ---------------------------------------------------------------- images
  // A stored image at `path` inside a link that opens it (`linkAttrs`: the link's other
  // attributes), as { node, url, auth }. With protected reads an <img> cannot send the token:
  // the bytes come by fetch and show through an object URL (`url`, revoked by the caller), if
  // `wanted(entry)` still holds when they arrive. A missing image shows a note instead.
  function imageEntry(path, alt, linkAttrs, wanted) {
    var img = el('img', { alt: alt, decoding: 'async' });
    linkAttrs.href = path;
    linkAttrs.target = '_blank';
    linkAttrs.rel = 'noopener';
    var link = el('a', linkAttrs, img);
    var entry = { node: link, url: null, auth: state.readAuth };
    img.addEventListener('error', function () {
      img.remove();
      link.appendChild(el('span', { class: 'missing', text: 'Image unavailable (expired or not stored)' }));
    });
    if (!state.readAuth) {
      img.src = path;
      return entry;
    }
    fetch(path, { headers: authHeaders(true), cache: 'force-cache' }).then(function (res) {
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.blob();
    }).then(function (blob) {
      if (!wanted(entry)) return;
      entry.url = URL.createObjectURL(blob);
      img.src = entry.url;
      link.href = entry.url;
    }).catch(function () { img.dispatchEvent(new Event('error')); });
    return entry;
  }

  var thumbs = new Map();   // job id -> { node, url, auth }
  function thumbFor(job) {
    var cached = thumbs.get(job.id);
    if (cached && cached.auth === state.readAuth) return cached;
    if (cached) dropThumb(job.id);
    var label = job.enhanced_prompt || job.prompt || job.id;
    var entry = imageEntry(ROOT + jobPath(job.id) + '/image', 'Image for: ' + label,
                           { class: 'thumb', title: 'Open the full image' },
                           function (e) { return thumbs.get(job.id) === e; });
    thumbs.set(job.id, entry);
    return entry;
  }
  function dropThumb(id) {
    var entry = thumbs.get(id);
    if (!entry) return;
    if (entry.url) URL.revokeObjectURL(entry.url);
    thumbs.delete(id);
  }

  // ---------------------------------------------------------------- rendering
  var renderTimer = null;
  function scheduleRender() {
    if (renderTimer) return;
    renderTimer = setTimeout(function () { renderTimer = null; render(); }, 30);
  }

  function sortedJobs() {
    var running = [], recent = [], failed = [];
    state.jobs.forEach(function (j) {
      if (RUNNING[j.status]) running.push(j);
      else if (j.status === 'completed') recent.push(j);
      else if (j.status === 'failed') failed.push(j);
    });
    running.sort(function (a, b) { return (a.started_at || 0) - (b.started_at || 0); });
    var newest = function (a, b) { return (b.finished_at || 0) - (a.finished_at || 0); };
    recent.sort(newest);
    failed.sort(newest);
    return { running: running, recent: recent, failed: failed };
  }

  function notLoaded() { return state.conn === 'unauthorized' ? 'Waiting for the API token…' : 'Loading…'; }

  // The element with keyboard focus, by its data-focus key: sections are rebuilt at each
  // render, and the rebuilt element with the same key gets the focus back.
  function focusKey() {
    var active = document.activeElement;
    return active && active.getAttribute ? active.getAttribute('data-focus') : null;
  }
  function restoreFocus(key) {
    if (!key || focusKey() === key) return;
    var node = document.querySelector('[data-focus="' + key + '"]');
    if (node && node.focus) node.focus();
  }

  function render() {
    var key = focusKey();
    if (JOB_ID) { renderJob(); restoreFocus(key); return; }
    var lists = sortedJobs();
    // Forget what no section shows any more.
    lists.recent.slice(MAX_SHOWN).forEach(function (j) { state.jobs.delete(j.id); });
    lists.failed.slice(MAX_SHOWN).forEach(function (j) { state.jobs.delete(j.id); });
    lists.recent = lists.recent.slice(0, MAX_SHOWN);
    lists.failed = lists.failed.slice(0, MAX_SHOWN);
    state.jobs.forEach(function (j, id) { if (j.status === 'cancelled') state.jobs.delete(id); });
    if (state.jobs.size > 3000) {
      var queued = [];
      state.jobs.forEach(function (j) { if (j.status === 'queued') queued.push(j); });
      queued.slice(0, state.jobs.size - 3000).forEach(function (j) { state.jobs.delete(j.id); });
    }

    renderHeader(lists);
    renderQueues();
    renderRunning(lists.running);
    renderRecent(lists.recent);
    renderFailed(lists.failed);
    renderWorkers(lists.running);
    renderModelChoices();
    tick();
    restoreFocus(key);
  }

  function renderHeader(lists) {
    var workers = state.workers.length;
    $('worker-count').textContent = String(workers);
    $('worker-word').textContent = plural(workers, 'worker', 'workers');
    $('workers-dot').style.background = workers > 0 ? 'var(--green-dot)' : 'var(--red-dot)';
    var pending = 0, active = 0;
    Object.keys(state.queues).forEach(function (m) { pending += state.queues[m].pending; active += state.queues[m].active; });
    $('running-total').textContent = String(active);
    $('pending-total').textContent = String(pending);
    document.title = (lists.running.length ? '● ' + lists.running.length + ' running · ' : '') + 'ImageQueue';
  }

  function renderQueues() {
    var models = Object.keys(state.queues);
    var box = $('queues');
    if (!models.length) {
      replaceChildren(box, el('div', { class: 'panel empty', text: state.lastSync ? 'No models configured.' : notLoaded() }));
      return;
    }
    $('queues-hint').textContent = models.length + ' ' + plural(models.length, 'model', 'models');
    replaceChildren(box, models.map(function (model) {
      var q = state.queues[model];
      var limit = q.concurrency;
      var busy = limit ? Math.min(1, q.active / limit) : 0;
      var since = state.oldestSince[model];
      var saturated = limit && q.active >= limit && q.pending > 0;   // every slot busy and jobs waiting
      var meterClass = 'meter' + (saturated ? ' full' : '');
      var meter = el('span');
      meter.style.width = Math.round(busy * 100) + '%';
      var mark = el('span', { class: 'model-mark', text: model.charAt(0) || '?', 'aria-hidden': 'true' });
      mark.style.background = modelColor(model);
      return el('article', { class: 'panel queue', 'data-model': model },
        el('div', { class: 'queue-head' },
          el('div', { class: 'queue-name' }, mark, el('span', { text: model }),
            q.paused ? el('span', { class: 'badge paused', title: 'No worker claims ' + model + ' jobs until it is resumed' }, 'paused') : null),
          el('span', { class: 'slots', text: limit === null ? '' : q.active + ' / ' + limit + ' ' + plural(limit, 'slot', 'slots') + ' busy' }),
          pauseButton(model, q.paused)),
        el('div', { class: 'queue-nums' },
          el('div', { class: 'num pending' }, el('span', { class: 'v', text: q.pending }), el('span', { class: 'l', text: 'pending' })),
          el('div', { class: 'num running' }, el('span', { class: 'v', text: q.active }), el('span', { class: 'l', text: 'running' })),
          el('div', { class: 'num dead' + (q.dead > 0 ? ' nonzero' : '') }, el('span', { class: 'v', text: q.dead }), el('span', { class: 'l', text: 'dead' }))),
        el('div', { class: meterClass, title: 'Concurrency ' + (limit === null ? '?' : limit) + ': jobs of ' + model + ' that may run at once, cluster-wide' + (saturated ? ' (all busy, jobs waiting)' : '') }, meter),
        el('div', { class: 'queue-foot' },
          el('span', null, 'completed ', el('b', { text: q.completed_total.toLocaleString() })),
          el('span', { class: q.failed_total > 0 ? 'bad' : '' }, 'failed ', el('b', { text: q.failed_total.toLocaleString() })),
          since === null || since === undefined
            ? el('span', null, 'oldest pending ', el('b', { text: '—' }))
            : el('span', { 'data-tick': 'age', 'data-since': since, 'data-warn-after': 60000 }, 'oldest pending ', el('b', { text: human(serverNow() - since) }))),
        queueControls(model, q));
    }));
  }

  function stageBadge(job) {
    var label = job.status;
    var title = null;
    if (job.status === 'retrying' && job.retry) {
      label = 'retrying ' + (job.retry.attempt || '?') + '/' + (job.retry.of || '?');
      if (isNum(job.retry.delay_ms)) title = 'next try in ' + took(job.retry.delay_ms);
    }
    if (job.status === 'generating' && job.enhancement && job.enhancement.fallback) {
      title = 'enhancement fell back to the original prompt' + (job.enhancement.reason ? ': ' + job.enhancement.reason : '');
    }
    return el('span', { class: 'badge ' + job.status, title: title }, el('span', { class: 'dot' }), label);
  }

  // A job's id, shortened, as a link to its page.
  function jobIdNode(id) {
    return el('a', { class: 'jobid', href: jobPageURL(id), title: id, 'aria-label': 'Job ' + id, 'data-focus': 'open:' + id },
      el('code', { text: shortId(id) }));
  }

  // ---------------------------------------------------------------- live progress
  // Whole percent, rounded down; 29/100 (a hair under 0.29 * 100 in binary) is 29.
  function percentOf(progress) { return Math.floor(Math.max(0, Math.min(1, progress)) * 100 + 1e-9); }

  // A running job's preview: one <img> per job, kept across renders (the table is rebuilt
  // on every render and the route says no-store, so a new <img> would fetch it each time).
  // Each newer preview event (its rev) fetches GET /v1/jobs/{id}/preview?rev=N, with the
  // token when reads need it, into a blob URL; the shown image stays until the next one has
  // arrived. A 404 (no preview any more) hides it.
  var previews = new Map();   // job id -> { node, url, shownRev, wantRev, loading, auth }
  function previewFor(job) {
    var entry = previews.get(job.id);
    if (entry && entry.auth !== state.readAuth) { dropPreview(job.id); entry = null; }
    if (!entry) {
      var img = el('img', { class: 'preview', alt: 'Preview of the image being generated', width: '48', height: '48', decoding: 'async' });
      img.hidden = true;
      entry = { node: img, url: null, shownRev: null, wantRev: null, loading: false, auth: state.readAuth };
      previews.set(job.id, entry);
    }
    if (entry.wantRev === null || job.previewRev > entry.wantRev) {
      entry.wantRev = job.previewRev;
      loadPreview(job.id, entry);
    }
    return entry.node;
  }
  // The preview of job `id` at revision `rev`, as a blob; null when there is none now (404:
  // no such job, 409: no preview); rejected on any other failure.
  function previewBlob(id, rev) {
    var headers = authHeaders(false);
    delete headers['Accept'];
    return fetch(ROOT + jobPath(id) + '/preview?rev=' + rev, { headers: headers, cache: 'no-store' }).then(function (res) {
      if (res.status === 404 || res.status === 409) return null;
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.blob();
    });
  }
  function loadPreview(id, entry) {
    if (entry.loading || entry.wantRev === null || entry.wantRev === entry.shownRev) return;
    var rev = entry.wantRev;
    entry.loading = true;
    previewBlob(id, rev).then(function (blob) {
      if (previews.get(id) !== entry) return;
      entry.shownRev = rev;
      if (!blob) { entry.node.hidden = true; return; }
      var url = URL.createObjectURL(blob);
      if (entry.url) URL.revokeObjectURL(entry.url);
      entry.url = url;
      entry.node.src = url;
      entry.node.hidden = false;
    }).catch(function () {
      if (previews.get(id) === entry) entry.shownRev = rev;   // keep the last one; the next event tries again
    }).then(function () {
      entry.loading = false;
      if (previews.get(id) === entry) loadPreview(id, entry);  // a newer preview arrived meanwhile
    });
  }
  function dropPreview(id) {
    var entry = previews.get(id);
    if (!entry) return;
    if (entry.url) URL.revokeObjectURL(entry.url);
    previews.delete(id);
  }

  // A running job's progress bar (from its latest event's `progress`) and, once its worker
  // stored one (`"preview": true`), its preview.
  function progressNodes(job) {
    var hasProgress = isNum(job.progress);
    var hasPreview = isNum(job.previewRev);
    if (!hasPreview) dropPreview(job.id);
    if (!hasProgress && !hasPreview) return null;
    var percent = hasProgress ? percentOf(job.progress) : null;
    return el('span', { class: 'live' },
      hasProgress ? el('progress', { class: 'progress', max: '100', value: String(percent), 'aria-label': 'Generation progress',
                                     'aria-valuetext': percent + ' %' }) : null,
      hasProgress ? el('span', { class: 'percent', 'aria-hidden': 'true', text: percent + ' %' }) : null,
      hasPreview ? previewFor(job) : null);
  }

  function renderRunning(running) {
    $('running-count').textContent = String(running.length);
    $('running-count').className = 'count' + (running.length ? ' hot' : '');
    $('running-empty').hidden = running.length > 0;
    $('running-empty').textContent = state.lastSync ? 'Nothing running — workers are idle.' : notLoaded();
    var live = new Set(running.map(function (j) { return j.id; }));
    Array.from(previews.keys()).forEach(function (id) { if (!live.has(id)) dropPreview(id); });
    replaceChildren($('running-body'), running.map(function (job) {
      var text = job.enhanced_prompt || job.prompt || '';
      var attempts = (job.attempt || 0) > 1 ? el('span', { class: 'attempt', text: 'attempt ' + job.attempt + (job.max_attempts ? '/' + job.max_attempts : '') }) : null;
      return el('tr', { 'data-status': job.status, 'data-job-id': job.id },
        el('td', null, jobIdNode(job.id)),
        el('td', null, el('span', { class: 'chip', text: job.model })),
        el('td', null, stageBadge(job), attempts, progressNodes(job)),
        el('td', { class: 'elapsed', 'data-tick': 'clock', 'data-since': isNum(job.started_at) ? job.started_at : null }, clock(isNum(job.started_at) ? serverNow() - job.started_at : null)),
        el('td', { class: 'worker', title: job.worker || null, text: job.worker || '—' }),
        el('td', { class: 'prompt' }, el('span', { class: 'truncate', title: text || null, text: text || (job.detailed ? '—' : '…') })),
        el('td', { class: 'actions' }, cancelButton(job.id)));
    }));
  }

  function renderRecent(recent) {
    $('recent-count').textContent = String(recent.length);
    $('recent-empty').hidden = recent.length > 0;
    $('recent-empty').textContent = state.lastSync ? 'No completed jobs yet.' : notLoaded();
    var keep = new Set(recent.map(function (j) { return j.id; }));
    Array.from(thumbs.keys()).forEach(function (id) { if (!keep.has(id)) dropThumb(id); });
    replaceChildren($('recent'), recent.map(function (job) {
      var entry = thumbFor(job);
      var thumb = entry.node;
      var oldTag = thumb.querySelector('.tag');
      if (oldTag) oldTag.remove();
      if (job.result && job.result.placeholder) thumb.appendChild(el('span', { class: 'tag', title: 'Made by the offline placeholder backend', text: 'Placeholder' }));
      var text = job.enhanced_prompt || job.prompt || '';
      var duration = isNum(job.finished_at) && isNum(job.enqueued_at) ? job.finished_at - job.enqueued_at : null;
      // A job of n images shows its first, with a count (the others: /image?index=k).
      var images = job.result && Array.isArray(job.result.images) ? job.result.images.length : 1;
      return el('article', { class: 'panel shot', 'data-status': 'completed', 'data-job-id': job.id },
        thumb,
        el('div', { class: 'shot-body' },
          el('div', { class: 'shot-meta' },
            el('span', { class: 'chip', text: job.model }),
            images > 1 ? el('span', { class: 'chip', title: 'This job made ' + images + ' images; the first is shown', text: images + ' images' }) : null,
            el('span', { class: 'took', title: 'Queued → finished', text: duration === null ? '' : took(duration) })),
          el('p', { class: 'prompt clamp clamp-3', title: text || null, text: text || (job.detailed ? '(no prompt)' : '…') }),
          el('div', { class: 'shot-foot' },
            jobIdNode(job.id),
            el('span', { 'data-tick': 'ago', 'data-since': isNum(job.finished_at) ? job.finished_at : null, text: ago(isNum(job.finished_at) ? serverNow() - job.finished_at : null) }))));
    }));
  }

  function renderFailed(failed) {
    $('failed-count').textContent = String(failed.length);
    $('failed-count').className = 'count' + (failed.length ? ' bad' : '');
    var box = $('failed');
    if (!failed.length) { replaceChildren(box, el('div', { class: 'empty', text: state.lastSync ? 'No failed jobs.' : notLoaded() })); return; }
    replaceChildren(box, failed.map(function (job) {
      var err = job.error || {};
      var text = job.prompt || job.enhanced_prompt || '';
      var busy = retrying.has(job.id);
      return el('div', { class: 'item', 'data-status': 'failed', 'data-job-id': job.id },
        el('div', { class: 'item-top' },
          el('span', { class: 'chip', text: job.model }),
          el('span', { class: 'grow' }, jobIdNode(job.id)),
          el('span', { class: 'ago', 'data-tick': 'ago', 'data-since': isNum(job.finished_at) ? job.finished_at : null, text: ago(isNum(job.finished_at) ? serverNow() - job.finished_at : null) })),
        el('p', { class: 'err' }, el('span', { class: 'err-code', text: err.code || 'failed' }), err.message || 'No reason recorded.'),
        text ? el('p', { class: 'prompt clamp clamp-2', title: text, text: text }) : null,
        el('div', { class: 'item-actions' },
          el('button', { type: 'button', class: 'btn small', disabled: busy, onclick: function () { retryJob(job.id); } }, busy ? 'Retrying…' : 'Retry'),
          retryNotes.has(job.id)
            ? el('span', { class: 'note bad', text: retryNotes.get(job.id) })
            : (isNum(job.attempt) && job.attempt > 0 ? el('span', { class: 'note', text: job.attempt + ' ' + plural(job.attempt, 'attempt', 'attempts') + ' made' }) : null)));
    }));
  }

  function renderWorkers(running) {
    // A worker's current jobs: the running jobs it holds (live from events); the registry's
    // own list is refreshed only every few seconds.
    var holding = {};
    running.forEach(function (j) { if (j.worker) (holding[j.worker] = holding[j.worker] || []).push(j.id); });
    var workers = state.workers.slice().sort(function (a, b) { return String(a.id).localeCompare(String(b.id)); });
    $('workers-count').textContent = String(workers.length);
    var box = $('workers');
    if (!workers.length) { replaceChildren(box, el('div', { class: 'empty', text: state.lastSync ? 'No live workers — start one with `imagequeue worker`.' : notLoaded() })); return; }
    replaceChildren(box, workers.map(function (w) {
      var jobs = holding[w.id] || [];
      return el('div', { class: 'item worker', 'data-worker-id': w.id, 'data-tick': 'worker', 'data-since': isNum(w.heartbeat_at) ? w.heartbeat_at : null },
        el('div', { class: 'item-top' },
          el('span', { class: 'dot', title: 'Registration refreshed every few seconds' }),
          el('span', { class: 'grow worker-name', title: w.id, text: w.id }),
          el('span', { class: 'ago', title: 'Last heartbeat' }, '♥ ', el('span', { class: 'hb', text: ago(isNum(w.heartbeat_at) ? serverNow() - w.heartbeat_at : null) }))),
        el('div', { class: 'worker-meta' },
          el('span', { text: (w.host || '?') + (isNum(w.pid) ? ' · pid ' + w.pid : '') }),
          el('span', { text: '·' }),
          (w.models || []).map(function (m) { return el('span', { class: 'chip', text: m }); })),
        el('div', { class: 'worker-meta' },
          jobs.length
            ? jobs.map(function (id) {
                return el('a', { class: 'job-chip', href: jobPageURL(id), title: id, 'aria-label': 'Job ' + id, 'data-focus': 'chip:' + id },
                  el('span', { class: 'dot' }), shortId(id));
              })
            : el('span', { class: 'idle', text: 'idle' })));
    }));
  }

  // Every second: elapsed timers, ages, heartbeat freshness, sync age.
  function tick() {
    var now = serverNow();
    var nodes = document.querySelectorAll('[data-tick]');
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var raw = node.getAttribute('data-since');
      if (raw === null || raw === '') continue;
      var since = Number(raw);
      var kind = node.getAttribute('data-tick');
      if (kind === 'clock') node.textContent = clock(now - since);
      else if (kind === 'ago') node.textContent = ago(now - since);
      else if (kind === 'age') {
        var b = node.querySelector('b');
        if (b) b.textContent = human(now - since);
        node.className = now - since > Number(node.getAttribute('data-warn-after') || Infinity) ? 'warn' : '';
      } else if (kind === 'worker') {
        var hb = node.querySelector('.hb');
        if (hb) hb.textContent = ago(now - since);
        node.classList.toggle('stale', now - since > 25000);
      }
    }
    $('synced').textContent = state.lastSync ? 'synced ' + ago(Date.now() - state.lastSync) : 'not synced yet';
  }

  // ---------------------------------------------------------------- changes behind the token
  // Asks for the token first when the tab has none (and runs `again` once it is given).
  function needToken(again) {
    if (state.token) return false;
    askToken('write', again);
    return true;
  }
  // Sends a change with the token and calls then(data, null) on success, then(null, why) when
  // it was refused: `why` is the API's own message (and code), shown where the change was asked.
  function change(label, method, path, body, then) {
    var options = { method: method, auth: true };
    if (body !== undefined) options.body = body;
    api(path, options).then(function (r) {
      if (r.status === 401) {
        toast(label + ' refused: the server rejected the API token (401 Unauthorized).', 'error');
        askToken('rejected');
        then(null, 'the API token was rejected (401 Unauthorized)');
        return;
      }
      if (!r.ok) {
        toast(label + ' refused: ' + errorText(r), 'error');
        then(null, errorText(r));
        return;
      }
      then(r.data || {}, null);
    }).catch(function () {
      toast(label + ' failed: the server could not be reached.', 'error');
      then(null, 'the server could not be reached');
    });
  }

  // Cancel (queued or running jobs): DELETE /v1/jobs/{id}.
  var cancelling = new Set();
  function cancelButton(id) {
    var busy = cancelling.has(id);
    return el('button', { type: 'button', class: 'btn small', 'data-action': 'cancel', 'data-focus': 'cancel:' + id, disabled: busy,
                          'aria-label': 'Cancel job ' + id, onclick: function () { cancelJob(id); } }, busy ? 'Cancelling…' : 'Cancel');
  }
  function cancelJob(id, after) {
    if (needToken(function () { cancelJob(id, after); })) return;
    cancelling.add(id);
    scheduleRender();
    change('Cancel', 'DELETE', jobPath(id), undefined, function (data, why) {
      cancelling.delete(id);
      if (data) toast('Cancelled job ' + shortId(id) + (data.was === 'running' ? ' (it was running).' : '.'), 'success');
      if (after) after(data, why);
      scheduleRender();
    });
  }

  // A queue card's controls: pause/resume, the concurrency, and the dead list's retry and purge.
  var concurrencyInputs = new Map();   // model -> { input, dirty, busy, note }: kept across renders
  var deadBusy = new Set();            // models with a retry or purge of the dead list on its way
  var purgeArmed = new Map();          // model -> browser ms until which a second click purges
  function concurrencyControl(model, q) {
    var entry = concurrencyInputs.get(model);
    if (!entry) {
      var input = el('input', { type: 'number', id: 'concurrency-' + model, min: '1', max: '1000', step: '1', inputmode: 'numeric',
                                class: 'num-input', 'data-focus': 'concurrency:' + model });
      entry = { input: input, dirty: false, busy: false, note: null };
      input.addEventListener('input', function () { entry.dirty = true; });
      concurrencyInputs.set(model, entry);
    }
    if (!entry.dirty && document.activeElement !== entry.input && isNum(q.concurrency)) entry.input.value = String(q.concurrency);
    // novalidate: the API checks the number, and the page shows its answer.
    var form = el('form', { class: 'inline-form', 'data-model': model, novalidate: 'novalidate' },
      el('label', { for: 'concurrency-' + model, text: 'Concurrency' }),
      entry.input,
      el('button', { type: 'submit', class: 'btn small', disabled: entry.busy, 'data-focus': 'concurrency-set:' + model,
                     'aria-label': 'Set the concurrency of ' + model }, entry.busy ? 'Setting…' : 'Set'));
    form.addEventListener('submit', function (event) {
      if (event && event.preventDefault) event.preventDefault();
      setConcurrency(model);
    });
    return el('div', null, form, entry.note ? el('p', { class: 'note bad', role: 'alert', text: entry.note }) : null);
  }
  function setConcurrency(model) {
    var entry = concurrencyInputs.get(model);
    if (!entry || needToken(function () { setConcurrency(model); })) return;
    var text = String(entry.input.value || '').trim();
    var number = Number(text);
    entry.busy = true;
    entry.note = null;
    scheduleRender();
    change('Concurrency of ' + model, 'PUT', 'v1/queues/' + encodeURIComponent(model) + '/concurrency',
           { concurrency: text !== '' && isFinite(number) ? number : text }, function (data, why) {
      entry.busy = false;
      if (data) {
        entry.dirty = false;
        if (state.queues[model] && isNum(data.concurrency)) state.queues[model].concurrency = data.concurrency;
        toast(model + ' may now run ' + data.concurrency + ' ' + plural(data.concurrency, 'job', 'jobs') + ' at once.', 'success');
        loadSnapshot();
      } else {
        entry.note = 'Not set: ' + why;
      }
      scheduleRender();
    });
  }
  function deadControls(model, q) {
    if (!(q.dead > 0)) return null;
    var busy = deadBusy.has(model);
    var armed = (purgeArmed.get(model) || 0) > Date.now();
    return el('div', { class: 'dead-actions' },
      el('button', { type: 'button', class: 'btn small', 'data-action': 'retry-dead', 'data-focus': 'retry-dead:' + model, disabled: busy,
                     'aria-label': 'Retry the ' + q.dead + ' dead ' + model + ' ' + plural(q.dead, 'job', 'jobs'),
                     onclick: function () { drainDead(model, 'retry'); } }, 'Retry dead (' + q.dead + ')'),
      el('button', { type: 'button', class: 'btn small danger', 'data-action': 'purge-dead', 'data-focus': 'purge-dead:' + model, disabled: busy,
                     'aria-label': armed ? 'Confirm: delete the ' + q.dead + ' dead ' + model + ' jobs for good' : 'Purge the dead ' + model + ' jobs',
                     onclick: function () { purgeDead(model); } }, armed ? 'Confirm purge' : 'Purge dead'));
  }
  function purgeDead(model) {
    if ((purgeArmed.get(model) || 0) > Date.now()) { purgeArmed.delete(model); drainDead(model, 'purge'); return; }
    purgeArmed.set(model, Date.now() + 6000);
    toast('Press “Confirm purge” within 6 s to delete the dead ' + model + ' jobs for good.');
    setTimeout(scheduleRender, 6100);
    scheduleRender();
  }
  function drainDead(model, verb) {
    if (needToken(function () { drainDead(model, verb); })) return;
    deadBusy.add(model);
    scheduleRender();
    var path = 'v1/dead/' + encodeURIComponent(model) + (verb === 'retry' ? '/retry' : '');
    change((verb === 'retry' ? 'Retry' : 'Purge') + ' of dead ' + model + ' jobs', verb === 'retry' ? 'POST' : 'DELETE', path,
           verb === 'retry' ? {} : undefined, function (data) {
      deadBusy.delete(model);
      if (data) {
        var count = verb === 'retry' ? data.retried : data.purged;
        toast((verb === 'retry' ? 'Requeued ' : 'Deleted ') + (isNum(count) ? count : '?') + ' dead ' + model + ' ' + plural(count, 'job', 'jobs') + '.', 'success');
        if (verb === 'purge') state.jobs.forEach(function (j, id) { if (j.model === model && j.status === 'failed') state.jobs.delete(id); });
        loadSnapshot();
      }
      scheduleRender();
    });
  }
  function queueControls(model, q) {
    return el('div', { class: 'queue-controls' }, concurrencyControl(model, q), deadControls(model, q));
  }

  // ---------------------------------------------------------------- enqueue from the page
  var modelChoices = '';
  function renderModelChoices() {
    var select = $('enqueue-model');
    var models = Object.keys(state.queues).sort();
    if (!select || models.join(',') === modelChoices) return;
    modelChoices = models.join(',');
    var chosen = select.value;
    replaceChildren(select, models.map(function (m) { return el('option', { value: m, text: m }); }));
    if (models.indexOf(chosen) >= 0) select.value = chosen;
  }
  function enqueueFromForm() {
    if (needToken(enqueueFromForm)) return;
    var body = {
      model: $('enqueue-model').value,
      prompt: $('enqueue-prompt').value,
      user: $('enqueue-user').value,
      enhance: !!$('enqueue-enhance').checked
    };
    var priority = $('enqueue-priority').value;
    if (priority && priority !== 'normal') body.priority = priority;
    var button = $('enqueue-submit');
    button.disabled = true;
    button.textContent = 'Enqueueing…';
    $('enqueue-error').hidden = true;
    change('Enqueue', 'POST', 'v1/jobs', body, function (data, why) {
      button.disabled = false;
      button.textContent = 'Enqueue';
      if (!data) {
        $('enqueue-error').textContent = 'Not queued: ' + why;
        $('enqueue-error').hidden = false;
        return;
      }
      $('enqueue-prompt').value = '';
      var result = $('enqueue-result');
      replaceChildren(result, ['Queued ',
        el('a', { href: jobPageURL(data.id), 'data-job-id': data.id, 'data-focus': 'enqueued:' + data.id, text: data.id }),
        isNum(data.position) ? ' at position ' + data.position + '.' : '.']);
      result.hidden = false;
    });
  }
  if ($('enqueue-form').addEventListener) {
    $('enqueue-form').addEventListener('submit', function (event) {
      if (event && event.preventDefault) event.preventDefault();
      enqueueFromForm();
    });
  }

  // ---------------------------------------------------------------- open a job by its id
  $('find-form').addEventListener('submit', function (event) {
    if (event && event.preventDefault) event.preventDefault();
    var id = String($('find-input').value || '').trim();
    if (!JOB_ID_PATTERN.test(id)) {
      $('find-error').textContent = id ? '“' + id.slice(0, 60) + '” is not a job id (model-suffix, e.g. flux-01jb…).' : 'Paste a job id.';
      $('find-error').hidden = false;
      $('find-input').focus();
      return;
    }
    $('find-error').hidden = true;
    window.location.href = jobPageURL(id);
  });

  // ---------------------------------------------------------------- the last hour, in charts
  // GET /v1/stats?minutes=60: per model and minute, jobs completed and failed, and the p50 and
  // p95 of queue wait and run time; drawn as small SVG charts by this script.
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var STATS_MINUTES = 60;
  var stats = { data: null, inFlight: false, timer: null, last: 0 };
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    for (var key in attrs) if (attrs[key] !== null && attrs[key] !== undefined) node.setAttribute(key, String(attrs[key]));
    for (var i = 2; i < arguments.length; i++) if (arguments[i]) node.appendChild(arguments[i]);
    return node;
  }
  function svgText(x, y, text, anchor) {
    var node = svg('text', { x: x, y: y, 'text-anchor': anchor || 'start', class: 'axis' });
    node.textContent = text;
    return node;
  }
  function loadStats() {
    if (stats.inFlight || JOB_ID) return;
    stats.inFlight = true;
    stats.last = Date.now();
    api('v1/stats?minutes=' + STATS_MINUTES).then(function (r) {
      if (r.ok && r.data && r.data.models) { stats.data = r.data; renderCharts(); }
    }).catch(function () { /* the snapshot's banner says the server is unreachable */ })
      .then(function () { stats.inFlight = false; });
  }
  // After completions and failures: a fresh read soon, at most every 5 s.
  function scheduleStats() {
    if (stats.timer || JOB_ID) return;
    var wait = Math.max(1000, 5000 - (Date.now() - stats.last));
    stats.timer = setTimeout(function () { stats.timer = null; loadStats(); }, wait);
  }
  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log(value) / Math.LN10));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }
  function duration(ms) { return ms < 1000 ? Math.round(ms) + ' ms' : took(ms); }
  // One chart: a <figure> with its caption, an SVG (role img, labelled with what it shows)
  // and a legend; `data-points` counts the bars or dots drawn.
  var W = 300, H = 96, PAD_TOP = 14, PAD_BOTTOM = 16;
  function countChart(model, series) {
    var max = niceMax(Math.max.apply(null, series.map(function (m) { return (m.completed || 0) + (m.failed || 0); }).concat([0])));
    var slot = W / series.length, plot = H - PAD_TOP - PAD_BOTTOM, points = 0, done = 0, failed = 0;
    var bars = svg('g', null);
    series.forEach(function (m, i) {
      var c = m.completed || 0, f = m.failed || 0;
      done += c; failed += f;
      var x = i * slot + slot * 0.15, w = Math.max(1, slot * 0.7), y = H - PAD_BOTTOM;
      if (c > 0) { var hc = plot * c / max; bars.appendChild(svg('rect', { x: x, y: y - hc, width: w, height: hc, class: 'bar ok', 'data-point': c })); y -= hc; points++; }
      if (f > 0) { var hf = plot * f / max; bars.appendChild(svg('rect', { x: x, y: y - hf, width: w, height: hf, class: 'bar bad', 'data-point': f })); points++; }
    });
    var label = model + ': ' + done + ' completed and ' + failed + ' failed in the last ' + series.length + ' minutes';
    return figure('counts', model, 'Jobs per minute', label, points, max + ' / min', bars,
      [['ok', 'completed ' + done], ['bad', 'failed ' + failed]]);
  }
  function durationChart(kind, model, series, key, caption) {
    var values = [];
    series.forEach(function (m) { if (m[key]) values.push(m[key].p95); });
    var max = niceMax(Math.max.apply(null, values.concat([0])));
    var slot = W / series.length, plot = H - PAD_TOP - PAD_BOTTOM, points = 0;
    var group = svg('g', null);
    ['p95', 'p50'].forEach(function (p) {
      var path = '', run = false;
      series.forEach(function (m, i) {
        var v = m[key] ? m[key][p] : null;
        if (!isNum(v)) { run = false; return; }
        var x = i * slot + slot / 2, y = H - PAD_BOTTOM - plot * Math.min(1, v / max);
        path += (run ? ' L' : ' M') + x.toFixed(1) + ' ' + y.toFixed(1);
        run = true;
        group.appendChild(svg('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.4, class: 'dot-' + p, 'data-point': v }));
        points++;
      });
      if (path) group.insertBefore(svg('path', { d: path.trim(), class: 'line-' + p }), group.firstChild);
    });
    var last = null;
    series.forEach(function (m) { if (m[key]) last = m[key]; });
    var label = model + ': ' + caption.toLowerCase() + (last ? ', latest minute p50 ' + duration(last.p50) + ', p95 ' + duration(last.p95) : ', no completed jobs') +
      ' in the last ' + series.length + ' minutes';
    return figure(kind, model, caption, label, points / 2, duration(max), group, [['p50', 'p50'], ['p95', 'p95']]);
  }
  function figure(kind, model, caption, label, points, top, body, legend) {
    var title = svg('title', null);
    title.textContent = label;
    var chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', role: 'img', 'aria-label': label, class: 'chart' },
      title,
      svg('line', { x1: 0, y1: H - PAD_BOTTOM + 0.5, x2: W, y2: H - PAD_BOTTOM + 0.5, class: 'baseline' }),
      svgText(2, 10, top), svgText(2, H - 3, '−' + (stats.data ? stats.data.minutes : STATS_MINUTES) + ' min'), svgText(W - 2, H - 3, 'now', 'end'),
      body);
    return el('figure', { class: 'chart-box', 'data-chart': kind, 'data-model': model, 'data-points': Math.round(points) },
      el('figcaption', { text: caption }), chart,
      el('div', { class: 'legend', 'aria-hidden': 'true' }, legend.map(function (l) {
        return el('span', null, el('span', { class: 'key ' + l[0] }), l[1]);
      })));
  }
  function renderCharts() {
    var box = $('charts');
    var models = stats.data ? Object.keys(stats.data.models).sort() : [];
    if (!models.length) { replaceChildren(box, el('div', { class: 'panel empty', text: stats.data ? 'No models configured.' : 'Loading…' })); return; }
    replaceChildren(box, models.map(function (model) {
      var m = stats.data.models[model] || {};
      var series = Array.isArray(m.series) ? m.series : [];
      return el('article', { class: 'panel charts-model', 'data-model': model },
        el('div', { class: 'queue-name' }, el('span', { text: model }),
          el('span', { class: 'hint', text: (m.completed || 0) + ' completed · ' + (m.failed || 0) + ' failed' +
            (m.run_ms ? ' · run p50 ' + duration(m.run_ms.p50) + ', p95 ' + duration(m.run_ms.p95) : '') })),
        el('div', { class: 'chart-row' },
          countChart(model, series),
          durationChart('wait', model, series, 'wait_ms', 'Queue wait'),
          durationChart('run', model, series, 'run_ms', 'Run time')));
    }));
  }

  // ---------------------------------------------------------------- a job's page (/jobs/{id})
  // GET /v1/jobs/{id} (read again after each status change, and every 5 s while it may still
  // move: its position and ETA change without events), followed by GET /v1/jobs/{id}/events
  // for progress and previews.
  var jobView = { data: null, missing: null, loading: false, again: false, rev: 0, progress: null, previewRev: null,
              source: null, abort: null, everOpen: false, note: null, noteBad: false, images: null, imagesFor: null };
  function etaPhrase(ms) {          // as QueueETA.phrase says it
    if (!isNum(ms) || ms < 500) return 'starts as soon as a worker claims it';
    var s = Math.floor(ms / 1000) + (ms % 1000 >= 500 ? 1 : 0);
    if (s <= 10) return 'about ' + s + ' s';
    if (s <= 90) return 'about ' + Math.floor((s + 2) / 5) * 5 + ' s';
    var m = Math.floor((s + 30) / 60);
    if (m <= 90) return 'about ' + m + ' min';
    return 'about ' + Math.floor((m + 30) / 60) + ' h';
  }
  function when(ms) {
    if (!isNum(ms)) return '–';
    var d = new Date(ms);
    var time = pad2(d.getHours()) + ':' + pad2(d.getMinutes()) + ':' + pad2(d.getSeconds()) + '.' + String(1000 + d.getMilliseconds()).slice(1);
    return d.toDateString() === new Date().toDateString() ? time : d.toLocaleDateString() + ' ' + time;
  }
  function timeNode(ms) { return el('time', { datetime: isNum(ms) ? new Date(ms).toISOString() : null, text: when(ms) }); }

  function loadJob() {
    if (jobView.loading) { jobView.again = true; return; }
    jobView.loading = true;
    api(jobPath(JOB_ID)).then(function (r) {
      if (r.status === 401 && !state.readAuth) {
        state.readAuth = true;
        if (state.token) return api(jobPath(JOB_ID));
      }
      return r;
    }).then(function (r) {
      if (r.status === 401) {
        stopJobStream();
        setConn('unauthorized');
        askToken(state.token ? 'read-rejected' : 'read');
        return;
      }
      if (r.status === 404 || r.status === 400) {
        jobView.missing = r.status === 404 ? 'There is no job ' + JOB_ID + ' (it never existed, or it has expired).' : errorText(r);
        jobView.data = null;
        stopJobStream();
        setConn('ended');
        setBanner('job', null);
        scheduleRender();
        return;
      }
      if (!r.ok || !r.data) { setBanner('job', 'Could not read the job: ' + errorText(r) + ' — retrying.', 'error'); return; }
      setBanner('job', null);
      jobView.missing = null;
      jobView.data = r.data;
      if (!RUNNING[r.data.status]) { jobView.progress = null; jobView.previewRev = null; }
      if (!TERMINAL[r.data.status] && !jobView.source && !jobView.abort) startJobStream();
      if (TERMINAL[r.data.status] && !jobView.source && !jobView.abort) setConn('ended');
      scheduleRender();
    }).catch(function () {
      setBanner('job', 'Cannot reach the ImageQueue server — retrying.', 'error');
    }).then(function () {
      jobView.loading = false;
      if (jobView.again) { jobView.again = false; loadJob(); }
    });
  }

  function stopJobStream() {
    if (jobView.source) { jobView.source.close(); jobView.source = null; }
    if (jobView.abort) { jobView.abort.abort(); jobView.abort = null; }
  }
  function startJobStream() {
    stopJobStream();
    setConn(jobView.everOpen ? 'reconnecting' : 'connecting');
    var url = ROOT + jobPath(JOB_ID) + '/events';
    var opened = function () { jobView.everOpen = true; setConn('live'); };
    if (!state.readAuth && window.EventSource) {
      var source = new EventSource(url);
      jobView.source = source;
      source.onopen = function () { if (jobView.source === source) opened(); };
      source.addEventListener('status', function (e) { if (jobView.source === source) onJobEvent(e.data); });
      // The stream ends after a terminal status (onJobEvent closes it first); otherwise the
      // browser reconnects by itself, and the job is read again meanwhile.
      source.onerror = function () {
        if (jobView.source !== source) return;
        setConn('reconnecting');
        if (source.readyState === 2) { jobView.source = null; setTimeout(loadJob, 2000); }
      };
      return;
    }
    var controller = new AbortController();
    jobView.abort = controller;
    var headers = streamHeaders();
    fetch(url, { headers: headers, cache: 'no-store', signal: controller.signal }).then(function (res) {
      if (res.status === 401) { jobView.abort = null; setConn('unauthorized'); askToken('read-rejected'); return null; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      opened();
      var reader = res.body.getReader(), decoder = new TextDecoder(), buffer = '';
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error('stream ended');
          buffer = (buffer + decoder.decode(chunk.value, { stream: true })).replace(/\r\n?/g, '\n');
          var end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            dispatchBlock(buffer.slice(0, end), onJobEvent);
            buffer = buffer.slice(end + 2);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      if (controller.signal.aborted || jobView.abort !== controller) return;
      jobView.abort = null;
      setConn('reconnecting');
      setTimeout(loadJob, 2000);   // reopens the stream unless the job has ended
    });
  }
  function onJobEvent(text) {
    var ev;
    try { ev = JSON.parse(text); } catch (e) { return; }
    if (!ev || ev.id !== JOB_ID || typeof ev.status !== 'string') return;
    if (isNum(ev.rev) && ev.rev <= jobView.rev) return;
    if (isNum(ev.rev)) jobView.rev = ev.rev;
    if (ev.status === 'generating' && isNum(ev.progress)) jobView.progress = Math.max(0, Math.min(1, ev.progress));
    else if (ev.status !== 'generating') jobView.progress = null;
    if (RUNNING[ev.status] && ev.preview === true && isNum(ev.rev)) jobView.previewRev = ev.rev;
    else if (!RUNNING[ev.status]) jobView.previewRev = null;
    var changed = !jobView.data || jobView.data.status !== ev.status;
    if (jobView.data) {
      jobView.data.status = ev.status;
      if (isNum(ev.position)) jobView.data.position = ev.position;
      if (isNum(ev.eta_ms)) jobView.data.eta_ms = ev.eta_ms;
    }
    if (TERMINAL[ev.status]) { stopJobStream(); setConn('ended'); }
    if (changed || !isNum(ev.progress)) loadJob();   // the timeline, times, result and error come from the job
    scheduleRender();
  }

  // The job's images (GET /v1/jobs/{id}/image?index=k), made once per completion.
  function jobImages(d) {
    var key = d.id + '@' + d.finished_at;
    if (jobView.imagesFor === key && jobView.images) return jobView.images;
    if (jobView.images) jobView.images.forEach(function (i) { if (i.url) URL.revokeObjectURL(i.url); });
    var count = isNum(d.n) && d.n > 1 ? d.n : 1;
    jobView.images = [];
    jobView.imagesFor = key;
    var images = jobView.images;
    for (var k = 0; k < count; k++) {
      images.push(imageEntry(ROOT + jobPath(d.id) + '/image' + (k > 0 ? '?index=' + k : ''),
                             'Image ' + (k + 1) + ' of ' + count + ' for: ' + (d.enhanced_prompt || d.prompt || d.id),
                             { class: 'job-image', 'data-focus': 'image:' + k, title: 'Open image ' + (k + 1) + ' in full' },
                             function () { return jobView.images === images; }));
    }
    return jobView.images;
  }

  function jobAction(kind) {
    var d = jobView.data;
    if (!d) return;
    jobView.note = null;
    if (kind === 'cancel') {
      cancelJob(d.id, function (data, why) {
        jobView.note = data ? 'Cancelled (it was ' + data.was + ').' : 'Not cancelled: ' + why;
        jobView.noteBad = !data;
        loadJob();
      });
      return;
    }
    if (needToken(function () { jobAction(kind); })) return;
    jobView.busy = true;
    scheduleRender();
    change('Retry', 'POST', 'v1/dead/' + encodeURIComponent(d.model) + '/retry', { id: d.id }, function (data, why) {
      jobView.busy = false;
      jobView.note = data ? 'Requeued.' : 'Not retried: ' + why;
      jobView.noteBad = !data;
      if (data) { jobView.rev = 0; loadJob(); startJobStream(); }
      scheduleRender();
    });
  }

  function fact(label, value, attrs) {
    return [el('dt', { text: label }), el('dd', attrs || null, value === null || value === undefined || value === '' ? '–' : value)];
  }
  function renderJob() {
    var view = $('job-view');
    var d = jobView.data;
    $('job-id').textContent = JOB_ID;
    if (!d) {
      view.removeAttribute('data-status');
      replaceChildren($('job-body'), el('div', { class: 'panel empty', role: jobView.missing ? 'alert' : null, text: jobView.missing || notLoaded() }));
      return;
    }
    document.title = d.status + ' · ' + shortId(d.id) + ' · ImageQueue';
    view.setAttribute('data-status', d.status);
    var running = !!RUNNING[d.status];
    var cancelBusy = cancelling.has(d.id);
    var actions = el('div', { class: 'job-actions' },
      d.status === 'queued' || running
        ? el('button', { type: 'button', class: 'btn', 'data-action': 'cancel', 'data-focus': 'job-cancel', disabled: cancelBusy,
                         onclick: function () { jobAction('cancel'); } }, cancelBusy ? 'Cancelling…' : 'Cancel job')
        : null,
      d.status === 'failed'
        ? el('button', { type: 'button', class: 'btn primary', 'data-action': 'retry', 'data-focus': 'job-retry', disabled: !!jobView.busy,
                         onclick: function () { jobAction('retry'); } }, jobView.busy ? 'Retrying…' : 'Retry')
        : null,
      jobView.note ? el('span', { class: 'note' + (jobView.noteBad ? ' bad' : ''), role: jobView.noteBad ? 'alert' : 'status', text: jobView.note }) : null);

    var head = el('section', { class: 'panel job-head', 'aria-label': 'Status' },
      el('div', { class: 'item-top' }, stageBadge(d), el('span', { class: 'chip', text: d.model }),
        d.priority && d.priority !== 'normal' ? el('span', { class: 'chip', text: d.priority + ' priority' }) : null),
      d.status === 'queued'
        ? el('p', { class: 'job-wait', id: 'job-position' }, isNum(d.position) ? 'Position ' + d.position + ' in the ' + d.model + ' queue · ' : 'Waiting · ',
            el('span', { id: 'job-eta', text: isNum(d.eta_ms) ? 'expected to start ' + etaPhrase(d.eta_ms).replace(/^about/, 'in about') : 'no estimate yet (no run-time history, or the model is paused)' }))
        : null,
      running ? liveNodes(d) : null,
      actions);

    var facts = el('dl', { class: 'facts' },
      fact('Model', d.model), fact('User', d.user), fact('Priority', d.priority || 'normal'),
      fact('Attempt', (d.attempt || 0) + ' of ' + (d.max_attempts || 1)),
      fact('Images', String(isNum(d.n) ? d.n : 1)), fact('Enhance', d.enhance === false ? 'no' : 'yes'),
      fact('Worker', d.worker),
      fact('Enqueued', timeNode(d.enqueued_at)), fact('Started', isNum(d.started_at) ? timeNode(d.started_at) : null),
      fact('Finished', isNum(d.finished_at) ? timeNode(d.finished_at) : null),
      fact('Took', isNum(d.finished_at) && isNum(d.enqueued_at) ? took(d.finished_at - d.enqueued_at) + ' (queued → finished)' : null));

    var prompts = el('section', { class: 'panel job-prompts', 'aria-labelledby': 'h-prompt' },
      el('h3', { id: 'h-prompt', text: 'Prompt' }), el('p', { class: 'prompt-text', id: 'job-prompt', text: d.prompt || '–' }),
      el('h3', { text: 'Enhanced prompt' }),
      el('p', { class: 'prompt-text', id: 'job-enhanced', text: d.enhanced_prompt || (d.enhance === false ? 'Not asked for.' : 'Not known yet.') }));

    var outcome = null;
    if (d.status === 'completed') {
      outcome = el('section', { class: 'panel job-outcome', 'aria-labelledby': 'h-images' }, el('h3', { id: 'h-images', text: 'Images' }),
        el('div', { class: 'job-images' }, jobImages(d).map(function (i) { return i.node; })),
        d.result && d.result.placeholder ? el('p', { class: 'hint', text: 'Made by the offline placeholder backend.' }) : null);
    } else if (d.error) {
      outcome = el('section', { class: 'panel job-outcome', 'aria-labelledby': 'h-error', role: d.status === 'failed' ? 'alert' : null },
        el('h3', { id: 'h-error', text: d.status === 'failed' ? 'Error' : 'Last error' }),
        el('p', { class: 'err', id: 'job-error' }, el('span', { class: 'err-code', text: d.error.code || 'failed' }), d.error.message || ''));
    }

    var history = Array.isArray(d.history) ? d.history : [];
    var timeline = el('section', { class: 'panel job-timeline', 'aria-labelledby': 'h-timeline' },
      el('h3', { id: 'h-timeline', text: 'Timeline' }),
      el('ol', { class: 'timeline', id: 'timeline' }, history.map(function (h, i) {
        var previous = i > 0 ? history[i - 1].time : null;
        return el('li', { 'data-status': h.status },
          el('span', { class: 'badge ' + h.status }, el('span', { class: 'dot' }), h.status),
          timeNode(h.time),
          isNum(previous) ? el('span', { class: 'ago', text: '+' + took(h.time - previous) }) : el('span', { class: 'ago', text: 'enqueued' }),
          isNum(h.attempt) ? el('span', { class: 'attempt', text: 'attempt ' + h.attempt }) : null);
      })));

    replaceChildren($('job-body'), [head,
      el('div', { class: 'job-grid' },
        el('div', { class: 'job-col' }, outcome, prompts),
        el('div', { class: 'job-col' }, timeline, el('section', { class: 'panel', 'aria-label': 'Details' }, facts)))]);
  }
  // A running job's progress bar and its latest preview (one <img>, kept across renders).
  var jobPreview = { node: null, url: null, shownRev: null, loading: false };
  function liveNodes(d) {
    var hasProgress = isNum(jobView.progress);
    if (!jobPreview.node) {
      jobPreview.node = el('img', { class: 'job-preview', alt: 'Preview of the image being generated', decoding: 'async' });
      jobPreview.node.hidden = true;
    }
    if (isNum(jobView.previewRev) && jobView.previewRev !== jobPreview.shownRev && !jobPreview.loading) {
      var rev = jobView.previewRev;
      jobPreview.loading = true;
      previewBlob(d.id, rev).then(function (blob) {
        jobPreview.shownRev = rev;
        if (!blob) return;
        if (jobPreview.url) URL.revokeObjectURL(jobPreview.url);
        jobPreview.url = URL.createObjectURL(blob);
        jobPreview.node.src = jobPreview.url;
        jobPreview.node.hidden = false;
      }).catch(function () { jobPreview.shownRev = rev; })
        .then(function () { jobPreview.loading = false; if (jobView.previewRev !== jobPreview.shownRev) scheduleRender(); });
    }
    var percent = hasProgress ? percentOf(jobView.progress) : null;
    return el('div', { class: 'job-live' },
      hasProgress
        ? el('label', { class: 'job-progress' }, 'Generating ',
            el('progress', { max: '100', value: String(percent), id: 'job-progress', 'aria-valuetext': percent + ' %' }),
            el('span', { class: 'percent', text: percent + ' %' }))
        : el('span', { class: 'hint', text: d.status === 'enhancing' ? 'Improving the prompt…' : 'Running since ' + when(d.started_at) }),
      jobPreview.node);
  }

  function startJobPage() {
    $('dashboard').hidden = true;
    $('job-view').hidden = false;
    var hide = document.querySelectorAll('.dash-only');
    for (var i = 0; i < hide.length; i++) hide[i].hidden = true;
    document.title = 'Job ' + JOB_ID + ' · ImageQueue';
    render();
    loadJob();
    setInterval(function () { if (jobView.data && !TERMINAL[jobView.data.status]) loadJob(); }, 5000);
  }

  // ---------------------------------------------------------------- start
  renderTokenButton();
  if (JOB_ID) {
    startJobPage();
  } else {
    render();
    setInterval(tick, 1000);
    // A safety net for quiet periods: worker heartbeats and ages come from snapshots.
    setInterval(function () {
      if (!reconcileTimer && !snapshot.inFlight && Date.now() - snapshot.startedAt > 20000) loadSnapshot();
    }, 5000);
    loadSnapshot();   // opens the event stream when it answers
    loadStats();
    setInterval(function () { if (Date.now() - stats.last > 20000) loadStats(); }, 5000);
  }
})();
