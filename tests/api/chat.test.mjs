// Chat and completions through the official openai client: shapes, streaming vs not, stop
// strings, usage and logprobs. References come from the server's own independent paths
// (/tokenize, a greedy run without the stop string), never from numbers written here.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

let srv;
let client;
const messages = [{ role: 'user', content: 'Tell me a story about a cat.' }];

before(async () => {
  srv = await startServer(['-np', '2']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused' });
});
after(async () => {
  const { code } = await srv.stop();
  assert.equal(code, 0, 'SIGTERM stops the server with exit code 0');
});

test('chat completion: shape, usage, finish_reason length', async () => {
  const r = await client.chat.completions.create({ model: 'demo-moe', messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'demo-moe');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  if (r.choices[0].finish_reason === 'length') assert.equal(r.usage.completion_tokens, 12);
  assert.ok(r.usage.prompt_tokens > 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('completion: prompt_tokens equal /tokenize with BOS', async () => {
  const prompt = 'Once upon a time';
  const r = await client.completions.create({ model: 'demo-moe', prompt, max_tokens: 5, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const tok = await (await fetch(`${srv.url}/tokenize`, {
    method: 'POST',
    body: JSON.stringify({ content: prompt, add_special: true, parse_special: false }),
  })).json();
  assert.equal(r.usage.prompt_tokens, tok.tokens.length);
  const back = await (await fetch(`${srv.url}/detokenize`, {
    method: 'POST', body: JSON.stringify({ tokens: tok.tokens }),
  })).json();
  assert.ok(back.content.endsWith(prompt));
});

test('completion with token ids equals the same prompt as text', async () => {
  const prompt = 'The little dog';
  const tok = await (await fetch(`${srv.url}/tokenize`, {
    method: 'POST', body: JSON.stringify({ content: prompt, add_special: true, parse_special: false }),
  })).json();
  const a = await client.completions.create({ prompt, max_tokens: 8, temperature: 0 });
  const b = await client.completions.create({ prompt: tok.tokens, max_tokens: 8, temperature: 0 });
  assert.equal(b.choices[0].text, a.choices[0].text);
});

async function streamText(params, kind = 'chat') {
  const stream = kind === 'chat'
    ? await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } })
    : await client.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  let first = true;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    const c = chunk.choices[0];
    if (kind === 'chat') {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (first) assert.equal(c.delta.role, 'assistant');
      text += c.delta.content ?? '';
    } else {
      assert.equal(chunk.object, 'text_completion');
      text += c.text;
    }
    first = false;
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, finish, usage };
}

test('streaming chat equals the non-streamed reply, usage in the last chunk', async () => {
  const p = { messages, max_tokens: 20, temperature: 0 };
  const whole = await client.chat.completions.create(p);
  const s = await streamText(p);
  assert.equal(s.text, whole.choices[0].message.content);
  assert.equal(s.finish, whole.choices[0].finish_reason);
  assert.deepEqual(s.usage.completion_tokens, whole.usage.completion_tokens);
  assert.deepEqual(s.usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('streaming completion equals the non-streamed text', async () => {
  const p = { prompt: 'Once upon a time', max_tokens: 20, temperature: 0 };
  const whole = await client.completions.create(p);
  const s = await streamText(p, 'completion');
  assert.equal(s.text, whole.choices[0].text);
  assert.equal(s.usage.completion_tokens, whole.usage.completion_tokens);
});

test('seeded sampling repeats; stop strings end the text before them', async () => {
  const base = { prompt: 'Once upon a time', max_tokens: 40, temperature: 0.9, seed: 1234 };
  const a = await client.completions.create(base);
  const b = await client.completions.create(base);
  assert.equal(a.choices[0].text, b.choices[0].text);
  const full = a.choices[0].text;
  assert.ok(full.length > 12, `need some text to cut: ${JSON.stringify(full)}`);
  // A stop string taken from the middle of the unstopped text.
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 3);
  const want = full.slice(0, full.indexOf(stop));
  for (const stopField of [stop, [stop, 'zzzzqqqq']]) {
    const r = await client.completions.create({ ...base, stop: stopField });
    assert.equal(r.choices[0].text, want);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const s = await streamText({ ...base, stop: stopField }, 'completion');
    assert.equal(s.text, want, 'the stream never passes a stop string');
    assert.equal(s.finish, 'stop');
  }
});

test('chat logprobs: one entry per token, top_logprobs sorted, greedy picks the best', async () => {
  const r = await client.chat.completions.create({
    messages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.ok(content.length >= 1 && content.length <= r.usage.completion_tokens);
  for (const e of content) {
    assert.equal(typeof e.token, 'string');
    assert.ok(e.logprob <= 0);
    assert.ok(Array.isArray(e.bytes));
    assert.equal(e.top_logprobs.length, 3);
    for (let i = 1; i < 3; i++) assert.ok(e.top_logprobs[i - 1].logprob >= e.top_logprobs[i].logprob);
    assert.ok(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6, 'greedy token is the top one');
    const p = e.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(p <= 1 + 1e-4);
  }
  if (r.choices[0].finish_reason === 'length') {
    assert.equal(content.length, r.usage.completion_tokens);
    const text = Buffer.concat(content.map((e) => Buffer.from(e.bytes))).toString('utf8');
    assert.equal(text, r.choices[0].message.content);
  }
});

test('completion logprobs: tokens, token_logprobs, top_logprobs, text_offset', async () => {
  const r = await client.completions.create({ prompt: 'Once', max_tokens: 6, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.ok(lp.tokens.length >= 1 && lp.tokens.length <= r.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.equal(lp.top_logprobs.length, lp.tokens.length);
  assert.equal(lp.text_offset.length, lp.tokens.length);
  for (let i = 0; i < lp.tokens.length; i++) {
    assert.ok(Object.keys(lp.top_logprobs[i]).length <= 2);
    assert.ok(lp.token_logprobs[i] <= 0);
    if (i) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
});

test('extensions and penalties are accepted', async () => {
  const r = await client.chat.completions.create({
    messages, max_tokens: 4, temperature: 0.7, top_p: 0.9, presence_penalty: 0.5,
    frequency_penalty: 0.5, top_k: 20, min_p: 0.05, repeat_penalty: 1.1, seed: 3,
    chat_template_kwargs: { enable_thinking: false },
  });
  assert.equal(r.choices.length, 1);
  const s = await client.completions.create({ prompt: 'a', max_tokens: 3, n: 1 });
  assert.equal(s.choices.length, 1);
});

test('GET /v1/models and /health', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['demo-moe']);
  assert.equal(list.data[0].object, 'model');
  const h = await fetch(`${srv.url}/health`);
  assert.equal(h.status, 200);
});

test('GET /metrics is Prometheus text with the moeinfer_ families', async () => {
  const r = await fetch(`${srv.url}/metrics`);
  assert.equal(r.status, 200);
  const t = await r.text();
  for (const name of ['requests_total', 'prompt_tokens_total', 'generated_tokens_total', 'queue_length',
    'running_sequences', 'kv_pages_used', 'kv_pages_free', 'step_batch_tokens',
    'decode_experts_per_layer', 'decode_expert_bytes_per_token']) {
    assert.match(t, new RegExp(`# TYPE moeinfer_${name} (counter|gauge)`));
    assert.match(t, new RegExp(`moeinfer_${name}\\{model="demo-moe"\\} [0-9.e+-]+`));
  }
  const gen = Number(t.match(/moeinfer_generated_tokens_total\{model="demo-moe"\} (\S+)/)[1]);
  assert.ok(gen > 0);
});
