// Two models served at once (-m repeated): listed by name, routed by the request's model field,
// each with its own scheduler; an unknown name is 404 model_not_found.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, demoMoe, demoDense, metric } from './helpers.mjs';

let srv;
let client;

before(async () => {
  srv = await startServer(['-m', demoMoe, '-m', `dense=${demoDense},mmap`, '-np', '2']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await srv.stop();
});

test('/v1/models lists both by name', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['demo-moe', 'dense']);
  const one = await client.models.retrieve('dense');
  assert.equal(one.id, 'dense');
});

test('the model field routes to that model\'s scheduler', async () => {
  const before = await metric(srv.url, 'requests_total', 'dense');
  const r = await client.chat.completions.create({
    model: 'dense', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3,
  });
  assert.equal(r.model, 'dense');
  assert.equal(await metric(srv.url, 'requests_total', 'dense'), before + 1);
  const m = await client.completions.create({ model: 'demo-moe', prompt: 'a', max_tokens: 3 });
  assert.equal(m.model, 'demo-moe');
  const absent = await fetch(`${srv.url}/v1/completions`, {
    method: 'POST', body: JSON.stringify({ prompt: 'a', max_tokens: 2 }),
  });
  assert.equal((await absent.json()).model, 'demo-moe', 'no model field: the first one');
});

test('the two models answer differently for the same greedy prompt', async () => {
  const p = { prompt: 'Once upon a time', max_tokens: 16, temperature: 0 };
  const a = await client.completions.create({ ...p, model: 'demo-moe' });
  const b = await client.completions.create({ ...p, model: 'dense' });
  assert.notEqual(a.choices[0].text, b.choices[0].text);
});

test('unknown model: 404 model_not_found', async () => {
  await assert.rejects(client.completions.create({ model: 'gpt-9', prompt: 'a' }), (e) => {
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    return true;
  });
});
