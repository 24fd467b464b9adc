// moeinfer's chat page: a multi-turn chat over this server's /v1/chat/completions (streamed) and,
// for MoE models, the "moe_routing" extension drawn as a layer x expert grid and a load chart.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  models: [],        // GET /v1/models entries (with their "moe" shape)
  history: [],       // {role, content} of the conversation so far
  load: null,        // [moe layer][expert]: tokens routed there this conversation
  controller: null,  // AbortController of the running request
  lastRequest: null, // body of the last request (read by the browser test)
  lastEntries: [],   // moe_routing entries of the last answer, in order
};
window.moeinfer = state;

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = $('api-key').value.trim();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function model() {
  return state.models.find((m) => m.id === $('model').value) || state.models[0];
}
const isMoe = (m) => !!(m && m.moe && m.moe.n_expert > 0 && m.moe.moe_layers.length > 0);

function fmtCount(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}
function fmtBytes(n) {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

function setStatus(text) { $('status').textContent = text; }

// The info line: total vs active parameters, measured tokens/s, weight bytes per token.
function showInfo(tokPerS) {
  const m = model();
  if (!m || !m.moe) { $('info').textContent = ''; return; }
  const s = m.moe;
  const parts = [`${fmtCount(s.params_total)} parameters, ${fmtCount(s.params_active)} active per token`];
  if (isMoe(m)) parts.push(`${s.n_expert_used} of ${s.n_expert} experts in ${s.moe_layers.length} of ${s.n_layer} layers`);
  parts.push(`${fmtBytes(s.weight_bytes_per_token)} of weights read per token`);
  parts.push(tokPerS ? `${tokPerS.toFixed(1)} tokens/s` : '- tokens/s');
  $('info').textContent = parts.join(' · ');
}

// Builds the empty grid and load chart for the selected model (or the dense note).
function buildRoutingView() {
  const m = model();
  const moe = isMoe(m);
  $('moe-view').hidden = !moe;
  $('dense-note').hidden = moe || !m;
  const grid = $('grid');
  const load = $('load');
  grid.replaceChildren();
  load.replaceChildren();
  state.load = null;
  showInfo(0);
  if (!moe) return;
  const { n_expert: ne, moe_layers: layers } = m.moe;
  const cols = `2.2rem repeat(${ne}, minmax(0, 1fr))`;
  grid.style.gridTemplateColumns = cols;
  load.style.gridTemplateColumns = cols;
  state.load = layers.map(() => new Array(ne).fill(0));
  for (const layer of layers) {
    for (const target of [grid, load]) {
      const label = document.createElement('div');
      label.className = 'row-label';
      label.textContent = layer;
      target.append(label);
    }
    for (let e = 0; e < ne; e++) {
      const c = document.createElement('div');
      c.className = 'cell';
      c.dataset.layer = layer;
      c.dataset.expert = e;
      c.title = `layer ${layer}, expert ${e}`;
      grid.append(c);
      const slot = document.createElement('div');
      slot.className = 'slot';
      slot.title = `layer ${layer}, expert ${e}: 0 tokens`;
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.height = '0%';
      slot.append(bar);
      load.append(slot);
    }
  }
}

// Lights the grid with one token's routing entry {"token", "layers": {"<layer>": [[e, w], ...]}}.
function showEntry(entry, label) {
  $('grid-token').textContent = label;
  // The same picks in words, for screen readers.
  const words = entry ? Object.entries(entry.layers).map(([l, p]) => `layer ${l}: experts ${p.map(([e]) => e).join(', ')}`) : [];
  $('grid').setAttribute('aria-label', `Experts of ${label}: ${words.join('; ') || 'none yet'}`);
  for (const c of $('grid').children) {
    if (!c.classList.contains('cell')) continue;
    const picks = entry ? entry.layers[c.dataset.layer] || [] : [];
    const hit = picks.find(([e]) => e === Number(c.dataset.expert));
    c.classList.toggle('on', !!hit);
    c.style.setProperty('--w', hit ? Math.max(0, Math.min(1, hit[1])) : 0);
    c.title = `layer ${c.dataset.layer}, expert ${c.dataset.expert}${hit ? `: weight ${hit[1].toFixed(3)}` : ''}`;
  }
}

function addLoad(entries) {
  const m = model();
  if (!state.load || !isMoe(m)) return;
  const layers = m.moe.moe_layers;
  for (const entry of entries)
    layers.forEach((layer, i) => {
      for (const [e] of entry.layers[layer] || []) if (e >= 0 && e < m.moe.n_expert) state.load[i][e]++;
    });
  const slots = $('load').querySelectorAll('.slot');
  state.load.forEach((row, i) => {
    const max = Math.max(1, ...row);
    row.forEach((n, e) => {
      const slot = slots[i * row.length + e];
      slot.firstChild.style.height = `${(100 * n) / max}%`;
      slot.title = `layer ${layers[i]}, expert ${e}: ${n} tokens`;
    });
  });
}

function addMessage(role, text) {
  const div = document.createElement('div');
  div.className = `msg ${role}`;
  div.textContent = text;
  $('messages').append(div);
  div.scrollIntoView({ block: 'end' });
  return div;
}

// One span per streamed chunk of text; it keeps the routing of the tokens that chunk carried
// (the last one released its text) so that hovering or focusing it shows their experts.
function addPiece(div, text, entries) {
  if (!text) return;  // tokens that released no text (cut by a stop string): nothing to hover
  const span = document.createElement('span');
  span.className = 'tok';
  span.textContent = text;
  if (entries.length) {
    span.entries = entries;
    span.tabIndex = 0;
    const show = () => {
      const e = entries[entries.length - 1];
      showEntry(e, `token ${JSON.stringify(text)} (id ${e.token})`);
      span.classList.add('shown');
    };
    const hide = () => span.classList.remove('shown');
    span.addEventListener('mouseenter', show);
    span.addEventListener('focus', show);
    span.addEventListener('mouseleave', hide);
    span.addEventListener('blur', hide);
  }
  div.append(span);
}

// Reads server-sent events from a fetch response, calling onData with each parsed chunk.
async function readEvents(res, onData) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const data = line.slice(6);
        if (data === '[DONE]') return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function send() {
  const text = $('input').value;
  if (!text.trim() || state.controller) return;
  const m = model();
  if (!m) return;
  $('input').value = '';
  addMessage('user', text);
  state.history.push({ role: 'user', content: text });
  const div = addMessage('assistant', '');
  const body = {
    model: m.id,
    messages: state.history.slice(),
    stream: true,
    stream_options: { include_usage: true },
    temperature: Number($('temperature').value),
    max_tokens: Number($('max-tokens').value),
  };
  if (isMoe(m)) body.moe_routing = true;
  state.lastRequest = body;
  state.lastEntries = [];
  state.controller = new AbortController();
  $('send').disabled = true;
  $('stop').disabled = false;
  setStatus('generating...');
  let answer = '';
  let failed = false;
  let nTokens = 0;
  let tFirst = 0;
  try {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST', headers: headers(), body: JSON.stringify(body), signal: state.controller.signal,
    });
    if (!res.ok) {
      const err = await res.json().catch(() => ({}));
      throw new Error(err.error?.message || `HTTP ${res.status}`);
    }
    let finish = null;
    await readEvents(res, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      const entries = chunk.moe_routing || [];
      const choice = chunk.choices?.[0];
      if (!choice) return;
      const piece = (choice.delta?.reasoning_content || '') + (choice.delta?.content || '');
      if (piece || entries.length) {
        const now = performance.now();
        if (!tFirst) tFirst = now;
        nTokens += entries.length || (piece ? 1 : 0);
        if (nTokens > 1) showInfo(((nTokens - 1) * 1000) / Math.max(1, now - tFirst));
      }
      answer += piece;
      addPiece(div, piece, entries);
      if (entries.length) {
        state.lastEntries.push(...entries);
        addLoad(entries);
        showEntry(entries[entries.length - 1], 'the latest token');
      }
      if (choice.finish_reason) finish = choice.finish_reason;
      div.scrollIntoView({ block: 'end' });
    });
    setStatus(finish ? `done (${finish}, ${nTokens} tokens)` : 'done');
  } catch (e) {
    if (e.name === 'AbortError') {
      setStatus(`stopped after ${nTokens} tokens`);
    } else {
      failed = true;
      addMessage('error', `error: ${e.message}`);
      setStatus('failed');
    }
  } finally {
    // A failed turn leaves the conversation as it was; a stopped one keeps what was said.
    if (failed) state.history.pop();
    else state.history.push({ role: 'assistant', content: answer });
    state.controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
    $('input').focus();
  }
}

function stop() {
  if (state.controller) state.controller.abort();
}

function reset() {
  stop();
  state.history = [];
  $('messages').replaceChildren();
  buildRoutingView();
  setStatus('');
}

async function loadModels() {
  for (;;) {
    const h = await fetch('/health').catch(() => null);
    if (h && h.ok) break;
    setStatus('the server is loading models...');
    await new Promise((r) => setTimeout(r, 500));
  }
  const res = await fetch('/v1/models', { headers: headers() });
  if (!res.ok) {
    setStatus(res.status === 401 ? 'this server needs an API key (enter it above)' : `GET /v1/models: HTTP ${res.status}`);
    return;
  }
  state.models = (await res.json()).data;
  const sel = $('model');
  sel.replaceChildren(...state.models.map((m) => new Option(m.id, m.id)));
  sel.disabled = state.models.length < 2;
  buildRoutingView();
  setStatus('ready');
}

$('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
$('stop').addEventListener('click', stop);
$('reset').addEventListener('click', reset);
$('model').addEventListener('change', reset);
$('api-key').addEventListener('change', loadModels);
$('settings').addEventListener('submit', (e) => e.preventDefault());
loadModels();
