// The "moe_routing" extension and the web page's routes. The reference for the routing is the
// independent path of `moeinfer run --routing-stats` (generate + RoutingStats, no scheduler),
// and for the parameter counts `moeinfer inspect --json`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { startServer, demoMoe, demoDense } from './helpers.mjs';

// Dot-product kernels only (no AVX-512 prompt GEMM): a row's result does not depend on how many
// rows its pass had, so the server's prefix-cached requests and `run` compute the same numbers.
process.env.MOE_ISA = readFileSync('/proc/cpuinfo', 'utf8').includes(' avx2') ? 'avx2' : 'scalar';

let srv;
let client;
const prompt = 'And the LORD said unto Moses';
const nPredict = 16;

before(async () => {
  srv = await startServer(['-m', demoMoe, '-m', `dense=${demoDense}`, '-np', '2']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await srv.stop();
});

async function post(route, body) {
  const r = await fetch(`${srv.url}${route}`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.clone().text());
  return r;
}

// The data objects of an SSE response, [DONE] excluded.
async function sseChunks(route, body) {
  const text = await (await post(route, { ...body, stream: true })).text();
  const out = [];
  for (const ev of text.split('\n\n')) {
    if (!ev.startsWith('data: ')) continue;
    const data = ev.slice(6);
    if (data !== '[DONE]') out.push(JSON.parse(data));
  }
  return out;
}

const chunkKeys = ['id', 'object', 'created', 'model', 'system_fingerprint', 'choices', 'usage'];

test('without moe_routing the chunks and bodies have only the standard keys', async () => {
  const base = { model: 'demo-moe', max_tokens: 6, temperature: 0 };
  const chat = { ...base, messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } };
  for (const [route, body, choiceKeys] of [
    ['/v1/chat/completions', chat, ['index', 'delta', 'logprobs', 'finish_reason']],
    ['/v1/completions', { ...base, prompt }, ['text', 'index', 'logprobs', 'finish_reason']],
  ]) {
    const chunks = await sseChunks(route, body);
    assert.ok(chunks.length >= 2);
    for (const c of chunks) {
      assert.deepEqual(Object.keys(c).filter((k) => !chunkKeys.includes(k)), [], JSON.stringify(c));
      for (const ch of c.choices) assert.deepEqual(Object.keys(ch).filter((k) => !choiceKeys.includes(k)), []);
    }
    const { stream_options: _, ...plain } = body;
    const whole = await (await post(route, plain)).json();
    assert.equal(whole.moe_routing, undefined);
  }
});

function runRoutingStats(extraArgs = []) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'moe-routing-'));
  try {
    const out = execFileSync(process.env.MOEINFER, ['run', '-m', demoMoe, '-p', prompt, '-n', String(nPredict),
      '--temp', '0', '-t', '2', '--routing-stats', path.join(dir, 'r.json'), ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    return { stdout: out, stats: JSON.parse(readFileSync(path.join(dir, 'r.json'), 'utf8')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('moe_routing equals the experts `moeinfer run --routing-stats` records (greedy)', async () => {
  const { stdout, stats } = runRoutingStats();
  const chunks = await sseChunks('/v1/completions', {
    model: 'demo-moe', prompt, max_tokens: nPredict, temperature: 0, moe_routing: true,
    stream_options: { include_usage: true },
  });
  const entries = chunks.flatMap((c) => c.moe_routing ?? []);
  const usage = chunks.at(-1).usage;
  const text = chunks.map((c) => c.choices[0]?.text ?? '').join('');
  assert.equal(stdout.trimEnd(), (prompt + text).trimEnd(), 'the same greedy text');
  assert.equal(entries.length, usage.completion_tokens, 'one entry per generated token');
  assert.ok(entries.length >= 4);
  // Token i came from the pass at position prompt_tokens - 1 + i (the last prompt position for
  // the first one); run lists every evaluated position's experts, prompt first.
  const layers = stats.layers.map((L) => String(L.layer));
  const k = stats.model.n_expert_used;
  assert.ok(stats.token_experts.length >= usage.prompt_tokens - 1 + entries.length - 1);
  for (let i = 0; i < entries.length; i++) {
    assert.deepEqual(Object.keys(entries[i].layers), layers);
    const want = stats.token_experts[usage.prompt_tokens - 1 + i];
    if (!want) break;  // run does not evaluate its last token
    layers.forEach((layer, l) => {
      const got = entries[i].layers[layer];
      assert.equal(got.length, k);
      assert.deepEqual(got.map(([e]) => e), want[l], `token ${i}, layer ${layer}`);
      for (const [, w] of got) assert.ok(w > 0 && w <= 1, `weight ${w}`);
    });
  }
  // The non-streamed body carries the same entries.
  const whole = await (await post('/v1/completions', {
    model: 'demo-moe', prompt, max_tokens: nPredict, temperature: 0, moe_routing: true,
  })).json();
  assert.deepEqual(whole.moe_routing.map((e) => e.token), entries.map((e) => e.token));
  assert.deepEqual(whole.moe_routing.map((e) => e.layers), entries.map((e) => e.layers));
});

test('chat: routing stays aligned with the tokens when a stop string holds text back', async () => {
  const base = {
    model: 'demo-moe', messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 40,
    temperature: 0, moe_routing: true, stream_options: { include_usage: true },
  };
  const full = await sseChunks('/v1/chat/completions', base);
  const fullEntries = full.flatMap((c) => c.moe_routing ?? []);
  const fullText = full.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  assert.equal(fullEntries.length, full.at(-1).usage.completion_tokens);
  for (const c of full) if (c.choices.length) assert.ok(Array.isArray(c.moe_routing), 'every chunk with choices');
  assert.ok(fullText.length > 12, JSON.stringify(fullText));
  const stop = fullText.slice(Math.floor(fullText.length / 2), Math.floor(fullText.length / 2) + 3);
  const cut = await sseChunks('/v1/chat/completions', { ...base, stop });
  const entries = cut.flatMap((c) => c.moe_routing ?? []);
  const usage = cut.at(-1).usage;
  assert.equal(cut.map((c) => c.choices[0]?.delta?.content ?? '').join(''), fullText.slice(0, fullText.indexOf(stop)));
  assert.equal(entries.length, usage.completion_tokens, 'held-back and cut tokens keep their entries');
  assert.deepEqual(entries, fullEntries.slice(0, entries.length), 'the same tokens, in order');
});

test('moe_routing must be a boolean', async () => {
  const r = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST', body: JSON.stringify({ prompt, max_tokens: 2, moe_routing: 1 }),
  });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.param, 'moe_routing');
});

test('dense model: no moe_routing, and /v1/models says it has no experts', async () => {
  const chunks = await sseChunks('/v1/completions', { model: 'dense', prompt, max_tokens: 4, moe_routing: true });
  for (const c of chunks) assert.equal(c.moe_routing, undefined);
  const models = await client.models.list();
  const [moe, dense] = models.data;
  assert.equal(dense.moe.n_expert, 0);
  assert.deepEqual(dense.moe.moe_layers, []);
  assert.equal(dense.moe.params_active, dense.moe.params_total);
  assert.ok(moe.moe.n_expert > moe.moe.n_expert_used && moe.moe.n_expert_used > 0);
  assert.ok(moe.moe.moe_layers.length > 0 && moe.moe.moe_layers.length <= moe.moe.n_layer);
});

test('/v1/models "moe" matches `moeinfer inspect --json`', async () => {
  const models = (await client.models.list()).data;
  for (const [m, file] of [[models[0], demoMoe], [models[1], demoDense]]) {
    const ins = JSON.parse(execFileSync(process.env.MOEINFER, ['inspect', file, '--json']).toString());
    assert.equal(m.moe.params_total, ins.total_params);
    assert.equal(m.moe.params_active, ins.active_params);
    assert.equal(m.moe.n_layer, ins.n_layer);
    assert.equal(m.moe.moe_layers.length, ins.n_moe_layers);
    // A dense model reads all of its weights per token (+ one embedding row), an MoE fewer.
    assert.ok(m.moe.weight_bytes_per_token > 0 && m.moe.weight_bytes_per_token < 1.01 * ins.weight_bytes);
    if (m.moe.n_expert) assert.ok(m.moe.weight_bytes_per_token < ins.weight_bytes);
  }
});

test('the web page: GET / with a CSP that forbids other origins, its files, 404 for others', async () => {
  const page = await fetch(`${srv.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html; charset=utf-8/);
  const csp = page.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|https?:|\*/);
  const html = await page.text();
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//, 'nothing from another origin');
  const js = await fetch(`${srv.url}/web/app.js`);
  assert.match(js.headers.get('content-type'), /^text\/javascript/);
  assert.ok((await js.text()).includes('moe_routing'));
  const css = await fetch(`${srv.url}/web/style.css`);
  assert.match(css.headers.get('content-type'), /^text\/css/);
  assert.equal((await fetch(`${srv.url}/web/nope.js`)).status, 404);
});

test('with --api-key the page loads without the key, the API still needs it', async () => {
  const s = await startServer(['--api-key', 'sekret']);
  try {
    assert.equal((await fetch(`${s.url}/`)).status, 200);
    assert.equal((await fetch(`${s.url}/web/app.js`)).status, 200);
    assert.equal((await fetch(`${s.url}/v1/models`)).status, 401);
    const ok = await fetch(`${s.url}/v1/models`, { headers: { Authorization: 'Bearer sekret' } });
    assert.equal(ok.status, 200);
  } finally {
    await s.stop();
  }
});
