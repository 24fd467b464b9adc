// The web page (GET /) in headless Chromium against `moeinfer serve` on the demo MoE and its
// dense twin: no console errors, a typed message gets a streamed answer, the routing grid has
// n_layers x n_experts cells and lights exactly the top-k experts per layer of a hovered token
// (checked against the moe_routing data of the same request, streamed again here), the stop
// button ends the request and frees the slot (/metrics), the dense model shows no grid, and
// screenshots at desktop and phone widths go to $WEB_WORK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { startServer, demoMoe, demoDense, metric, sleep } from '../api/helpers.mjs';

const work = process.env.WEB_WORK || os.tmpdir();
let srv;
let browser;
let page;
let profile;
const problems = [];  // console errors, page errors, failed requests
let models;

before(async () => {
  // --deterministic: the replayed request (prefix-cached) computes exactly what the page's did.
  srv = await startServer(['-m', demoMoe, '-m', `dense=${demoDense}`, '-np', '2', '-t', '2', '--deterministic']);
  models = (await (await fetch(`${srv.url}/v1/models`)).json()).data;
  profile = mkdtempSync(path.join(os.tmpdir(), 'moe-chromium-'));
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    userDataDir: profile,
    // CI runs as root: Chromium refuses its sandbox there.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The stop button aborts its own fetch on purpose.
    if (!r.url().endsWith('/v1/chat/completions')) problems.push(`request failed: ${r.url()}`);
  });
  await page.setViewport({ width: 1280, height: 800 });
  await page.goto(`${srv.url}/`, { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'ready');
});

after(async () => {
  if (browser) await browser.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (srv) await srv.stop();
});

const shot = (name) => page.screenshot({ path: path.join(work, name) });

async function setControl(id, value) {
  await page.$eval(`#${id}`, (el, v) => { el.value = v; }, String(value));
}

// Types a message, sends it with Enter and waits for the end of the answer.
async function ask(text) {
  await page.focus('#input');
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /^done/.test(document.getElementById('status').textContent),
    { timeout: 60000 });
  return page.$eval('.msg.assistant:last-of-type', (d) => d.textContent);
}

// The same request as the page's last one, streamed here: [{text, entries}] per chunk with text.
async function replayChunks(body) {
  const res = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) });
  const out = [];
  for (const ev of (await res.text()).split('\n\n')) {
    if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
    const c = JSON.parse(ev.slice(6));
    const text = c.choices?.[0]?.delta?.content ?? '';
    if (text) out.push({ text, entries: c.moe_routing });
  }
  return out;
}

test('the MoE page: grid shape, a streamed answer, top-k lit for a hovered token', async () => {
  const moe = models[0].moe;
  assert.ok(moe.n_expert > 0);
  const cells = await page.$$eval('#grid .cell', (cs) => cs.length);
  assert.equal(cells, moe.moe_layers.length * moe.n_expert, 'n_layers x n_experts cells');
  assert.equal(await page.$eval('#dense-note', (e) => e.hidden), true);

  // Shift+Enter is a new line, not a send.
  await page.focus('#input');
  await page.keyboard.type('a');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Enter');
  await page.keyboard.up('Shift');
  assert.equal(await page.$eval('#input', (e) => e.value), 'a\n');
  assert.equal(await page.$$eval('.msg', (m) => m.length), 0);
  await setControl('input', '');

  await setControl('temperature', 0);
  await setControl('max-tokens', 24);
  const answer = await ask('Tell me a story.');
  assert.ok(answer.length > 0, 'a streamed answer');
  const sent = await page.evaluate(() => window.moeinfer.lastRequest);
  assert.equal(sent.stream, true);
  assert.equal(sent.moe_routing, true);
  assert.equal(sent.temperature, 0);

  const ref = await replayChunks(sent);
  const spans = await page.$$eval('.msg.assistant:last-of-type .tok', (s) => s.map((x) => x.textContent));
  assert.deepEqual(spans, ref.map((r) => r.text), 'one span per streamed piece, the same greedy text');
  assert.ok(spans.length > 1, 'the answer came in pieces');
  const pageEntries = await page.evaluate(() => window.moeinfer.lastEntries);
  assert.deepEqual(pageEntries.map((e) => e.layers), ref.flatMap((r) => r.entries).map((e) => e.layers).slice(0, pageEntries.length));

  for (const j of [0, Math.floor(spans.length / 2), spans.length - 1]) {
    const handles = await page.$$('.msg.assistant:last-of-type .tok');
    await handles[j].hover();
    const lit = await page.$$eval('#grid .cell.on', (cs) => cs.map((c) => ({
      layer: c.dataset.layer, expert: Number(c.dataset.expert), w: Number(c.style.getPropertyValue('--w')),
    })));
    const want = ref[j].entries.at(-1);
    assert.equal(lit.length, moe.moe_layers.length * moe.n_expert_used, `top-k per layer for token ${j}`);
    for (const layer of moe.moe_layers) {
      const got = lit.filter((c) => c.layer === String(layer)).map((c) => c.expert).sort((a, b) => a - b);
      const exp = want.layers[String(layer)].map(([e]) => e).sort((a, b) => a - b);
      assert.deepEqual(got, exp, `token ${j}, layer ${layer}`);
      for (const [e, w] of want.layers[String(layer)]) {
        const cell = lit.find((c) => c.layer === String(layer) && c.expert === e);
        assert.ok(Math.abs(cell.w - w) < 1e-6, 'intensity is the router weight');
      }
    }
  }
  assert.match(await page.$eval('#grid', (g) => g.getAttribute('aria-label')),
    new RegExp(`layer ${moe.moe_layers[0]}: experts \\d+`), 'the grid in words');
  // Keyboard: a token can be focused and shows its routing.
  await page.focus('.msg.assistant:last-of-type .tok');
  assert.match(await page.$eval('#grid-token', (e) => e.textContent), /^token /);
  const loadBars = await page.$$eval('#load .bar', (b) => b.filter((x) => parseFloat(x.style.height) > 0).length);
  assert.ok(loadBars >= moe.moe_layers.length * moe.n_expert_used, 'the load chart counts the tokens');
  assert.match(await page.$eval('#info', (e) => e.textContent), /active per token.*read per token.*tokens\/s/);
  await handlesHoverMiddle();
  await shot('desktop.png');
  await page.setViewport({ width: 390, height: 844 });
  await sleep(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, `no horizontal scrolling at phone width (${overflow}px)`);
  await shot('phone.png');
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'light' }]);
  const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(dark, light, 'dark mode follows prefers-color-scheme');
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await shot('phone-dark.png');
  await page.emulateMediaFeatures([]);
  await page.setViewport({ width: 1280, height: 800 });
});

async function handlesHoverMiddle() {
  await page.evaluate(() => document.activeElement?.blur());
  const handles = await page.$$('.msg.assistant:last-of-type .tok');
  await handles[Math.floor(handles.length / 2)].hover();
}

test('the stop button ends the request and the server frees the slot', async () => {
  const cancelled = await metric(srv.url, 'requests_cancelled_total', 'demo-moe');
  await setControl('temperature', 1);
  await setControl('max-tokens', 200);
  // Stop as soon as the first token is on the page (the demo model is fast).
  await page.evaluate(() => {
    const box = document.getElementById('messages');
    const obs = new MutationObserver(() => {
      const last = box.querySelector('.msg.assistant:last-of-type');
      if (last && last.querySelector('.tok')) {
        obs.disconnect();
        document.getElementById('stop').click();
      }
    });
    obs.observe(box, { childList: true, subtree: true });
  });
  await page.focus('#input');
  await page.keyboard.type('Tell me a long story about the sea.');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /^stopped/.test(document.getElementById('status').textContent),
    { timeout: 30000 });
  let running = -1;
  for (let i = 0; i < 100; i++) {
    running = await metric(srv.url, 'running_sequences', 'demo-moe');
    if (running === 0 && await metric(srv.url, 'requests_cancelled_total', 'demo-moe') === cancelled + 1) break;
    await sleep(100);
  }
  assert.equal(running, 0, 'no sequence left running');
  assert.equal(await metric(srv.url, 'requests_cancelled_total', 'demo-moe'), cancelled + 1);
  assert.equal(await page.$eval('#stop', (b) => b.disabled), true);
  assert.equal(await page.$eval('#send', (b) => b.disabled), false);
});

test('the dense model: the page without the grid, saying why', async () => {
  await page.select('#model', 'dense');
  assert.equal(await page.$eval('#moe-view', (e) => e.hidden), true);
  assert.equal(await page.$eval('#dense-note', (e) => e.hidden), false);
  assert.match(await page.$eval('#dense-note', (e) => e.textContent), /dense.*no expert routing/);
  await setControl('temperature', 0);
  await setControl('max-tokens', 12);
  const answer = await ask('Hello there.');
  assert.ok(answer.length > 0);
  const sent = await page.evaluate(() => window.moeinfer.lastRequest);
  assert.equal(sent.model, 'dense');
  assert.equal(sent.moe_routing, undefined, 'no routing asked of a dense model');
  assert.equal(await page.$$eval('#grid .cell', (c) => c.length), 0);
  // Multi-turn: the next request carries the conversation so far.
  await ask('And then?');
  const next = await page.evaluate(() => window.moeinfer.lastRequest);
  assert.deepEqual(next.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.equal(next.messages[1].content, answer);
  await shot('dense.png');
});

test('no console errors, no failed loads', () => {
  assert.deepEqual(problems, []);
});

// Last: Chromium logs the refused request's 400 as a console error.
test('a refused request shows the server\'s error and leaves the conversation as it was', async () => {
  const before = await page.evaluate(() => window.moeinfer.history.length);
  await setControl('max-tokens', 100000);
  await page.focus('#input');
  await page.keyboard.type('Too long.');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'failed');
  assert.match(await page.$eval('.msg.error:last-of-type', (e) => e.textContent), /^error: max_tokens/);
  assert.equal(await page.evaluate(() => window.moeinfer.history.length), before);
  assert.equal(await page.$eval('#send', (b) => b.disabled), false);
});
