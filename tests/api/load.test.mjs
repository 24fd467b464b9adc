// Load: 64 concurrent streaming clients over a bounded number of requests, 0 failures, bounded
// server RSS; a cancelled stream gives its sequence and KV pages back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, metric, sleep } from './helpers.mjs';

const CLIENTS = 64;
const REQUESTS = 128;
const RSS_LIMIT_KB = 1024 * 1024;  // 1 GiB for a 5 MiB model: anything near is a leak

let srv;
let client;

before(async () => {
  srv = await startServer(['-np', '8', '--max-queue', '256']);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 120000 });
});
after(async () => {
  await srv.stop();
});

async function waitIdle(model = 'demo-moe') {
  for (let i = 0; i < 200; i++) {
    const running = await metric(srv.url, 'running_sequences', model);
    const queued = await metric(srv.url, 'queue_length', model);
    if (running === 0 && queued === 0) return;
    await sleep(50);
  }
  throw new Error('the scheduler did not become idle');
}

// Pages held by live sequences (idle slots may keep pages as a prefix cache).
async function livePages() {
  const used = await metric(srv.url, 'kv_pages_used', 'demo-moe');
  let cached = 0;
  try { cached = await metric(srv.url, 'kv_pages_cached', 'demo-moe'); } catch { cached = 0; }
  return used - cached;
}

test(`${CLIENTS} concurrent streaming clients, ${REQUESTS} requests, 0 failures`, async () => {
  let next = 0;
  let failures = 0;
  let tokens = 0;
  const errors = [];
  const t0 = Date.now();
  async function worker(w) {
    while (next < REQUESTS) {
      const i = next++;
      try {
        const stream = await client.chat.completions.create({
          messages: [{ role: 'user', content: `Request ${i} from client ${w}: tell a story.` }],
          max_tokens: 16, temperature: 0.8, seed: i, stream: true,
          stream_options: { include_usage: true },
        });
        let finish = null;
        let usage = null;
        for await (const c of stream) {
          if (c.usage) usage = c.usage;
          if (c.choices.length && c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
        }
        if (!finish || !usage) throw new Error(`request ${i}: no finish_reason/usage`);
        tokens += usage.completion_tokens;
      } catch (e) {
        failures++;
        errors.push(String(e));
      }
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, (_, w) => worker(w)));
  const s = (Date.now() - t0) / 1000;
  const rss = srv.peakRssKb();
  console.log(`load: clients=${CLIENTS} requests=${REQUESTS} failures=${failures} ` +
    `tokens=${tokens} seconds=${s.toFixed(1)} peak_rss_mib=${(rss / 1024).toFixed(1)}`);
  assert.equal(failures, 0, errors.slice(0, 3).join('\n'));
  assert.ok(rss < RSS_LIMIT_KB, `peak RSS ${rss} kB`);
  await waitIdle();
  assert.equal(await livePages(), 0);
});

test('a cancelled stream returns its slot and pages to the pool', async () => {
  await waitIdle();
  const base = await livePages();
  const ac = new AbortController();
  const stream = await client.completions.create(
    { prompt: 'Once upon a time', max_tokens: 200, stream: true, temperature: 0.8 },
    { signal: ac.signal });
  let n = 0;
  let during = 0;
  await assert.rejects((async () => {
    for await (const _ of stream) {
      if (++n === 3) {
        during = await livePages();
        ac.abort();
      }
    }
  })());
  assert.ok(during > base, `pages in use while streaming (${during} vs ${base})`);
  await waitIdle();
  assert.equal(await livePages(), base);
  assert.ok(await metric(srv.url, 'requests_cancelled_total', 'demo-moe') >= 1);
});
