// Bad input and hostile clients: OpenAI error objects naming the field, 404, 413, 401, and
// stalled connections that must not block anyone else.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

let srv;
let client;
const KEY = 'test-key-123';
const msgs = [{ role: 'user', content: 'hi' }];

before(async () => {
  srv = await startServer(['--api-key', KEY, '--max-body', '65536', '-np', '2', '--timeout', '20']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
});
after(async () => {
  await srv.stop();
});

async function post(path, body, headers = {}) {
  const r = await fetch(`${srv.url}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

function assertOpenAIError(body, param) {
  assert.equal(typeof body.error.message, 'string');
  assert.equal(typeof body.error.type, 'string');
  assert.ok('param' in body.error && 'code' in body.error);
  assert.equal(body.error.param, param, JSON.stringify(body));
}

async function expect400(params, param, kind = 'chat') {
  const call = kind === 'chat'
    ? client.chat.completions.create(params) : client.completions.create(params);
  await assert.rejects(call, (e) => {
    assert.equal(e.status, 400, `${JSON.stringify(params)}: ${e.message}`);
    assert.equal(e.param, param, `${JSON.stringify(params)}: ${e.message}`);
    assert.equal(e.type, 'invalid_request_error');
    return true;
  });
}

test('malformed JSON and non-object bodies: 400, param null', async () => {
  for (const body of ['{"messages": [', 'null', '[1]', '']) {
    const r = await post('/v1/chat/completions', body);
    assert.equal(r.status, 400);
    assertOpenAIError(r.body, null);
  }
});

test('missing or wrong fields name the field', async () => {
  await expect400({ model: 'demo-moe' }, 'messages');
  await expect400({ messages: 'hello' }, 'messages');
  await expect400({ messages: [] }, 'messages');
  await expect400({ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role');
  await expect400({ messages: [{ content: 'x' }] }, 'messages[0].role');
  await expect400({ messages: [{ role: 'user', content: 42 }] }, 'messages[0].content');
  await expect400({ messages: msgs, max_tokens: 0 }, 'max_tokens');
  await expect400({ messages: msgs, max_tokens: -3 }, 'max_tokens');
  await expect400({ messages: msgs, max_tokens: 10 ** 9 }, 'max_tokens');
  await expect400({ messages: msgs, max_tokens: '5' }, 'max_tokens');
  await expect400({ messages: msgs, max_completion_tokens: 0 }, 'max_completion_tokens');
  await expect400({ messages: msgs, temperature: -0.5 }, 'temperature');
  await expect400({ messages: msgs, temperature: 'warm' }, 'temperature');
  await expect400({ messages: msgs, top_p: 2 }, 'top_p');
  await expect400({ messages: msgs, top_k: -1 }, 'top_k');
  await expect400({ messages: msgs, min_p: -1 }, 'min_p');
  await expect400({ messages: msgs, repeat_penalty: -1 }, 'repeat_penalty');
  await expect400({ messages: msgs, presence_penalty: 5 }, 'presence_penalty');
  await expect400({ messages: msgs, frequency_penalty: -9 }, 'frequency_penalty');
  await expect400({ messages: msgs, stop: 7 }, 'stop');
  await expect400({ messages: msgs, stop: ['ok', 3] }, 'stop[1]');
  await expect400({ messages: msgs, n: 2 }, 'n');
  await expect400({ messages: msgs, logprobs: true, top_logprobs: 50 }, 'top_logprobs');
  await expect400({ messages: msgs, top_logprobs: 2 }, 'top_logprobs');
  await expect400({ messages: msgs, stream_options: { include_usage: true } }, 'stream_options');
  await expect400({ messages: msgs, seed: 'x' }, 'seed');
  await expect400({}, 'prompt', 'completion');
  await expect400({ prompt: 12 }, 'prompt', 'completion');
  await expect400({ prompt: [1, -5] }, 'prompt[1]', 'completion');
  await expect400({ prompt: [1, 10 ** 7] }, 'prompt[1]', 'completion');
  await expect400({ prompt: 'x', echo: true }, 'echo', 'completion');
  await expect400({ prompt: 'x', max_tokens: 0 }, 'max_tokens', 'completion');
});

test('NaN and Infinity are not JSON: 400', async () => {
  for (const v of ['NaN', 'Infinity', '-Infinity']) {
    const r = await post('/v1/chat/completions', `{"messages":[{"role":"user","content":"x"}],"temperature":${v}}`);
    assert.equal(r.status, 400);
    assertOpenAIError(r.body, null);
  }
});

test('a prompt longer than the context: 400 context_length_exceeded', async () => {
  const long = 'word '.repeat(4000);
  await assert.rejects(client.completions.create({ prompt: long, max_tokens: 4 }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.param, 'prompt');
    assert.equal(e.code, 'context_length_exceeded');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ messages: [{ role: 'user', content: long }] }),
    (e) => e.status === 400 && e.param === 'messages' && e.code === 'context_length_exceeded');
  // max_tokens beyond the context is absurd for this model.
  await expect400({ prompt: 'x', max_tokens: 100000 }, 'max_tokens', 'completion');
});

test('body over --max-body: 413', async () => {
  const r = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(70000) }] }),
  });
  assert.equal(r.status, 413);
  assertOpenAIError(await r.json(), null);
});

test('unknown routes: 404 with an error object', async () => {
  const r = await fetch(`${srv.url}/v1/nope`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 404);
  assertOpenAIError(await r.json(), null);
});

test('unknown model with one served: it answers', async () => {
  const r = await client.completions.create({ model: 'gpt-4o', prompt: 'a', max_tokens: 2 });
  assert.equal(r.model, 'demo-moe');
});

test('auth: missing or wrong key is 401, the right one passes, /health is open', async () => {
  const wrong = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e.status === 401 && e.code === 'invalid_api_key');
  const none = await fetch(`${srv.url}/v1/models`);
  assert.equal(none.status, 401);
  assertOpenAIError(await none.json(), null);
  const ok = await client.models.list();
  assert.equal(ok.data.length, 1);
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
});

test('stalled clients (slowloris) do not block a normal request', async () => {
  const { port, hostname } = new URL(srv.url);
  const socks = [];
  for (let i = 0; i < 12; i++) {
    const s = net.connect(Number(port), hostname);
    s.on('error', () => {});
    await new Promise((res) => s.on('connect', res));
    if (i % 3 === 1) s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\n');       // half the headers
    if (i % 3 === 2) s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"pr'); // half a body
    socks.push(s);
  }
  const t0 = Date.now();
  const r = await client.completions.create({ prompt: 'Once', max_tokens: 4 });
  const ms = Date.now() - t0;
  assert.equal(r.choices.length, 1);
  assert.ok(ms < 5000, `a normal request took ${ms} ms behind stalled clients`);
  for (const s of socks) s.destroy();
});
