// Drives Debian's chromium (headless, through playwright-core) against `ferry ui` for the
// end-to-end tests in tests/e2e/browser.rs, which start the servers and check the stores.
//
//   node ui.mjs decide        the approval walk-through: alice's and bob's servers
//                             (FERRY_UI_ALICE, FERRY_UI_BOB), the releases (FERRY_RELEASES,
//                             JSON), the artifact digest (FERRY_ARTIFACT_SHA256)
//   node ui.mjs look URL...   loads each page and prints what it says (JSON lines: url, title,
//                             text); fails on any console error or failed request
//
// Screenshots go to FERRY_SHOTS. Any failed expectation exits non-zero with its message.
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const shots = env('FERRY_SHOTS');
const problems = [];

/** Records every console error, uncaught exception and failed request of `page`. */
function watch(page, who) {
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`${who}: console: ${m.text()} (${m.location().url})`); });
  page.on('pageerror', (e) => problems.push(`${who}: uncaught: ${e.message}`));
  // A navigation cancels what the page it leaves was still loading (net::ERR_ABORTED): not a fault.
  page.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`${who}: request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${who}: ${r.status()} for ${r.url()}`); });
  return page;
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** The stage card headed `stage`. */
function card(page, stage) {
  return page.locator('article.card', { has: page.getByRole('heading', { level: 2, name: new RegExp(`^${stage}\\b`) }) });
}

async function decide(browser) {
  const ids = JSON.parse(env('FERRY_RELEASES'));
  const alice = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = watch(await alice.newPage(), 'alice');

  // The printed address opens the index; the token moves into a cookie, out of the address.
  await page.goto(env('FERRY_UI_ALICE'));
  assert.equal(new URL(page.url()).search, '', `the token stays in the address bar: ${page.url()}`);
  await shoot(page, 'index');
  await page.getByRole('link', { name: 'shop', exact: true }).click();
  await page.waitForURL(/\/p\/shop$/);

  // Stages left to right with what is live in each; prod waits for two approvals.
  for (const stage of ['dev', 'staging', 'prod']) {
    const text = await card(page, stage).innerText();
    assert.match(text, new RegExp(`live: ${ids[stage]}`), `${stage} card: ${text}`);
  }
  const prod = await card(page, 'prod').innerText();
  assert.match(prod, new RegExp(`waiting ${ids.waiting}: 0 of 2 approvals; may approve: alice, bob, carol`), prod);
  await shoot(page, 'pipeline');

  // Through to the release: digests, the verified signature, the forged approval not counted.
  await page.getByRole('row', { name: new RegExp(`^${ids.waiting}`) }).getByRole('link', { name: ids.waiting }).click();
  await page.waitForURL(new RegExp(`/r/${ids.waiting}$`));
  const release = await page.locator('main').innerText();
  assert.match(release, /signature and digests: ✓ valid/, release);
  assert.ok(release.includes(env('FERRY_ARTIFACT_SHA256')), `the artifact's digest is not on the release page:\n${release}`);
  const prodRow = page.getByRole('row', { name: /^prod/ });
  const forged = await prodRow.innerText();
  assert.match(forged, /✗ not counted \S*0-alice-forged\.json: it is not a signed approval/, forged);
  assert.match(forged, /0 of 2 approvals/, `the forged record counted: ${forged}`);
  await shoot(page, 'release');

  // Alice decides: the summary, the protected stage's name typed, approve.
  await prodRow.getByRole('link', { name: 'review and decide' }).click();
  const summary = await page.locator('main').innerText();
  assert.match(summary, /signature\s+✓ verified with the pinned key/, summary);
  assert.match(summary, /\(protected stage\)/, summary);
  assert.match(summary, /You are alice, deciding as approver alice/, summary);
  await page.getByLabel(/type its name to confirm/).fill('prod');
  await page.getByLabel('Comment (optional)').fill('looks right');
  await shoot(page, 'decide');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.getByRole('heading', { name: new RegExp(`^alice approved ${ids.waiting} for prod`) }).waitFor();
  assert.match(await page.locator('main').innerText(), /1 of 2 approvals so far \(alice\)/);
  await shoot(page, 'approved-by-alice');

  // Alice watches the pipeline page; bob approves from his own server.
  const board = watch(await alice.newPage(), 'alice board');
  await board.goto(new URL('/p/shop', env('FERRY_UI_ALICE')).href);
  assert.match(await card(board, 'prod').innerText(), /1 of 2 approvals \(alice\)/);
  await board.evaluate(() => { window.ferryNotReloaded = true; });
  // …and the release's page, in another tab.
  const detail = watch(await alice.newPage(), 'alice release');
  await detail.goto(new URL(`/p/shop/r/${ids.waiting}`, env('FERRY_UI_ALICE')).href);
  assert.match(await detail.getByRole('row', { name: /^prod/ }).innerText(), /1 of 2 approvals \(alice\)/);
  await detail.evaluate(() => { window.ferryNotReloaded = true; });

  const bob = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const bobPage = watch(await bob.newPage(), 'bob');
  await bobPage.goto(env('FERRY_UI_BOB'));
  await bobPage.goto(new URL(`/p/shop/r/${ids.waiting}/s/prod`, env('FERRY_UI_BOB')).href);
  await bobPage.getByLabel(/type its name to confirm/).fill('prod');
  await bobPage.getByRole('button', { name: 'Approve' }).click();
  await bobPage.getByRole('heading', { name: new RegExp(`^bob approved ${ids.waiting} for prod`) }).waitFor();
  assert.match(await bobPage.locator('main').innerText(), /Approvals: approved by alice, bob/);
  await shoot(bobPage, 'approved-by-bob-phone');

  // Alice's pages turn to "approved" by themselves.
  await card(board, 'prod').locator('.state', { hasText: /^approved$/ }).waitFor({ timeout: 20000 });
  assert.equal(await board.evaluate(() => window.ferryNotReloaded), true, 'the page was reloaded rather than updated');
  assert.match(await card(board, 'prod').innerText(), /approved by alice, bob/);
  const live = await board.getByRole('row', { name: new RegExp(`^${ids.prod}`) }).innerText();
  assert.doesNotMatch(live, /carries it on/, `a release already deployed is not waiting: ${live}`);
  await shoot(board, 'pipeline-approved');
  const prodNow = detail.getByRole('row', { name: /^prod/ });
  await prodNow.locator('.state', { hasText: /^approved$/ }).waitFor({ timeout: 20000 });
  assert.equal(await detail.evaluate(() => window.ferryNotReloaded), true, 'the release page was reloaded rather than updated');
  assert.match(await prodNow.innerText(), /approved by alice, bob/);
  await shoot(detail, 'release-approved');

  // The audit page: the chain verified, alice's approval found by filtering.
  await board.getByRole('link', { name: 'Audit log' }).click();
  assert.match(await board.locator('main').innerText(), /✓ intact/);
  await board.getByLabel('actor', { exact: true }).fill('alice');
  await board.getByLabel('kind', { exact: true }).selectOption('approved');
  await board.getByRole('button', { name: 'Filter' }).click();
  await board.waitForURL(/actor=alice/);
  const audit = await board.locator('main').innerText();
  assert.match(audit, /\b2 of \d+ events/, `alice approved two releases: ${audit}`);
  assert.match(audit, /approved\s+alice/, audit);
  await shoot(board, 'audit');

  // Another site's page posting a rejection to alice's server: refused, nothing recorded (the
  // Rust side checks the log).
  const evil = await alice.newPage();
  const target = new URL(`/p/shop/r/${ids.waiting}/s/prod`, env('FERRY_UI_ALICE')).href;
  await evil.setContent(`<form method="post" action="${target}"><input name="verdict" value="reject"><input name="confirm" value="prod"><button>win a prize</button></form>`);
  const answer = evil.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
  await evil.getByRole('button', { name: 'win a prize' }).click();
  assert.equal((await answer).status(), 403, 'a form from another site was answered');
  await shoot(evil, 'forged-form-refused');
}

async function look(browser, urls) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  let n = 0;
  for (const url of urls) {
    const page = watch(await context.newPage(), url);
    await page.goto(url, { waitUntil: 'load' });
    await shoot(page, `look-${n++}`);
    console.log(JSON.stringify({ url: page.url(), title: await page.title(), text: await page.locator('main').innerText() }));
    await page.close();
  }
}

const [mode, ...rest] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
try {
  if (mode === 'decide') await decide(browser);
  else if (mode === 'look') await look(browser, rest);
  else throw new Error(`unknown mode ${mode}: decide or look`);
  assert.deepEqual(problems, [], 'the pages had errors');
} finally {
  await browser.close();
}
