// The web dashboard in a real browser: Debian's headless Chromium driven by
// playwright-core. run.sh starts a cluster and a job, then runs
//   node dashboard_test.mjs HTTP_URL JOB_ID TOKEN_FILE SCREENSHOT.png
// Checks: the overview lists the job and both taskmanagers; the job's graph
// has a box per vertex and an arrow per edge, with live rates that change
// without a reload; every vertex, sources included, shows its watermark and
// lag, and the source's advances; the checkpoint list fills; a wrong token is refused
// with a message that says so; cancel with the right token cancels the job;
// the token never appears in a URL, the page or its storage.
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, jobId, tokenFile, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: dashboard_test.mjs HTTP_URL JOB_ID TOKEN_FILE SCREENSHOT.png');
  process.exit(2);
}
const token = readFileSync(tokenFile, 'utf8').trim();
const t0 = Date.now();
const step = (s) => console.log(`== [${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);

async function jobJson() {
  const r = await fetch(`${url}/jobs/${jobId}`);
  assert.equal(r.status, 200);
  return r.json();
}

const profile = mkdtempSync(join(tmpdir(), 'sluice-dashboard-chromium-'));
// A fresh profile (user data dir) of its own, removed at the end.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 820 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let failed = false;
try {
  const page = await browser.newPage();
  const urls = [];
  const posts = [];
  const consoleErrors = [];
  page.on('request', (r) => {
    urls.push(r.url());
    if (r.method() === 'POST') posts.push({ url: r.url(), auth: r.headers().authorization || '' });
  });
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  step('overview: the job and both taskmanagers');
  await page.goto(`${url}/`);
  await page.getByTestId('job-row').filter({ hasText: jobId }).waitFor();
  assert.equal((await page.getByTestId('tm-count').locator('.v').textContent()).trim(), '2');

  step('the job graph: a box per vertex, an arrow per edge');
  await page.getByRole('link', { name: 'clickstream' }).first().click();
  await page.getByTestId('job-graph').waitFor();
  const j = await jobJson();
  assert.equal(await page.getByTestId('vertex').count(), j.vertices.length);
  assert.equal(await page.getByTestId('edge').count(), j.edges.length);
  const labels = await page.getByTestId('edge-label').allTextContents();
  assert.ok(labels.includes('hash'), `edge labels ${labels}`);
  const names = await page.getByTestId('vertex-name').allTextContents();
  for (const v of j.vertices) assert.ok(names.some((n) => n.startsWith(v.name.slice(0, 20))), `vertex ${v.name} drawn`);
  const parallelism = await page.getByTestId('vertex-parallelism').allTextContents();
  assert.ok(parallelism.includes('×2'), `parallelism ${parallelism}`);

  step('live rates: the source reads, and the numbers change without a reload');
  const source = page.locator('[data-testid=vertex]').filter({ has: page.getByText(/^read /) });
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=vertex-rates]')]
    .some((e) => /^read [1-9]/.test(e.textContent)), null, { timeout: 20000 });
  const first = await source.getByTestId('vertex-rates').textContent();
  const updated = await page.evaluate(() => document.body.dataset.updated);
  await page.waitForFunction((u) => document.body.dataset.updated !== u, updated, { timeout: 10000 });
  assert.equal(urls.filter((u) => u.endsWith('/')).length, 1, 'the page itself was loaded once (no reload)');
  const busy = await page.getByTestId('vertex-busy').allTextContents();
  assert.ok(busy.every((b) => /^busy \d+%  backpressured \d+%$/.test(b)), `busy/backpressure: ${busy}`);

  step('watermarks: every vertex shows one with its lag, and the source\'s advances');
  // Sources too: theirs is the watermark they emit. The dead-letter sink
  // has none (no watermarks flow on the dead-letter stream).
  const withEventTime = j.vertices.filter((v) => !v.is_dead_letter_sink).length;
  await page.waitForFunction((n) => [...document.querySelectorAll('[data-testid=vertex]')]
    .filter((e) => /^watermark \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(e.querySelector('[data-testid=vertex-watermark]').textContent) &&
      /^lag \d/.test(e.querySelector('[data-testid=vertex-watermark-lag]').textContent)).length === n,
  withEventTime, { timeout: 20000 });
  await source.getByTestId('vertex-watermark-lag').filter({ hasText: /^lag / }).waitFor();
  const sourceWm = async () => (await jobJson()).vertices.find((v) => v.is_source).watermark_ms;
  const wm0 = await sourceWm();
  assert.ok(Number.isInteger(wm0), `the source's watermark in the JSON status: ${wm0}`);
  const deadline = Date.now() + 15000;
  let wm1 = wm0;
  while (wm1 <= wm0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    wm1 = await sourceWm();
  }
  assert.ok(wm1 > wm0, `the source's watermark advances: ${wm0} -> ${wm1}`);
  const wm = (await page.getByTestId('vertex').evaluateAll((vs) => vs.map((v) =>
    v.querySelector('[data-testid=vertex-watermark]').textContent + ' ' +
    v.querySelector('[data-testid=vertex-watermark-lag]').textContent)));
  console.log(`   source: ${first}; watermarks: ${wm.join(' | ')}; source ${wm0} -> ${wm1}`);
  await page.screenshot({ path: screenshot });

  step('checkpoints: the history fills');
  await page.getByTestId('tab-checkpoints').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=checkpoint-row]')]
    .filter((r) => r.textContent.includes('COMPLETED')).length >= 2, null, { timeout: 20000 });
  const completed = Number(await page.getByTestId('cp-completed').locator('.v').textContent());
  assert.ok(completed >= 2, `completed checkpoints ${completed}`);
  assert.match(await page.getByTestId('latest-restore').textContent(), /started fresh/);

  step('cancel with a wrong token: refused, and the page says why');
  await page.getByTestId('tab-graph').click();
  await page.getByTestId('action-cancel').click();
  await page.getByTestId('confirm-yes').click();
  await page.getByTestId('token-input').fill('not-the-token');
  await page.getByTestId('token-ok').click();
  await page.getByTestId('banner').filter({ hasText: 'not this cluster' }).waitFor();
  assert.equal((await jobJson()).state, 'RUNNING');
  assert.equal(await page.getByTestId('auth-state').textContent(), 'no token', 'a refused token is forgotten');

  step('cancel with the token');
  await page.getByTestId('action-cancel').click();
  await page.getByTestId('confirm-yes').click();
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('token-ok').click();
  await page.getByTestId('banner').filter({ hasText: `Job ${jobId} cancelled` }).waitFor();
  await page.getByTestId('job-name').getByTestId('state-badge').filter({ hasText: 'CANCELED' }).waitFor();
  assert.equal((await jobJson()).state, 'CANCELED');

  step('the token stays out of URLs, the page and its storage');
  assert.equal(posts.length, 2);
  assert.deepEqual(posts.map((p) => p.auth), ['Bearer not-the-token', `Bearer ${token}`]);
  assert.ok(urls.every((u) => !u.includes(token)), 'no URL holds the token');
  assert.ok(!(await page.content()).includes(token), 'the page does not show the token');
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  assert.ok(!stored.includes(token), 'nothing stored without the user asking');
  assert.deepEqual(consoleErrors.filter((e) => !/40[13]/.test(e)), [], 'no script errors');
  step('passed');
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
