// A full queue (--max-queue) answers 503 at once instead of holding requests in memory; the
// server keeps serving afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

let srv;
let client;

before(async () => {
  srv = await startServer(['-np', '1', '--max-queue', '2']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await srv.stop();
});

test('requests beyond --max-queue get 503 queue_full', async () => {
  const results = await Promise.allSettled(Array.from({ length: 12 }, () =>
    client.completions.create({ prompt: 'Once upon a time', max_tokens: 40, temperature: 0.5 })));
  const ok = results.filter((r) => r.status === 'fulfilled').length;
  const full = results.filter((r) => r.status === 'rejected' && r.reason.status === 503
    && r.reason.code === 'queue_full').length;
  assert.equal(ok + full, results.length, results.filter((r) => r.status === 'rejected')
    .map((r) => String(r.reason)).join('\n'));
  assert.ok(ok >= 1, 'some requests are served');
  assert.ok(full >= 1, 'some requests are refused with 503');
  const after = await client.completions.create({ prompt: 'a', max_tokens: 2 });
  assert.equal(after.choices.length, 1);
});
