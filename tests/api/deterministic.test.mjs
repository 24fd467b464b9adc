// Batch invariance through the server: with --deterministic, 16 concurrent greedy completions of
// different prompt and output lengths give exactly the text, and the very same token logprobs,
// that each gives when it runs alone (without the flag the logprobs differ in the last digits).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer } from './helpers.mjs';

const N = 16;
let srv;
let client;

before(async () => {
  srv = await startServer(['--deterministic', '-np', String(N), '--batch-size', '64']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120000 });
});
after(async () => {
  await srv.stop();
});

const words = ['And', 'the', 'LORD', 'said', 'unto', 'Moses', 'behold', 'the', 'land', 'of', 'Egypt'];
const requests = Array.from({ length: N }, (_, i) => ({
  model: 'demo-moe',
  prompt: words.slice(0, 2 + (i % words.length)).join(' ') + ` (${i})`,
  max_tokens: 4 + ((i * 7) % 29),
  temperature: 0,
  logprobs: 1,
}));

async function complete(r) {
  const c = await client.completions.create(r);
  const ch = c.choices[0];
  return { text: ch.text, n: c.usage.completion_tokens, logprobs: ch.logprobs.token_logprobs };
}

test(`${N} concurrent greedy completions equal each run alone, logprobs included`, async () => {
  const alone = [];
  for (const r of requests) alone.push(await complete(r));  // one at a time: alone in every step
  const together = await Promise.all(requests.map(complete));
  for (let i = 0; i < N; i++) {
    assert.ok(alone[i].n > 0, `request ${i} generated nothing`);
    assert.equal(together[i].text, alone[i].text, `request ${i} differs when batched`);
    assert.equal(together[i].n, alone[i].n, `request ${i} token count differs`);
    assert.deepEqual(together[i].logprobs, alone[i].logprobs, `request ${i} logprobs differ`);
  }
});
