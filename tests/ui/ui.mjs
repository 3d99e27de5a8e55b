// Browser tests of the catalogue's web UI: Playwright (playwright-core) driving Debian's
// chromium against a catalogue the Rust test started (tests/catalogue.rs passes its address,
// the users' password and the call to open in the environment). Prints one line per check
// and exits non-zero on the first failure. Screenshots go to tests/ui/artifacts/.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import path from 'node:path';
import http from 'node:http';

const axeScript = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const base = process.env.CATALOGUE_URL;
const password = process.env.UI_PASSWORD;
const callId = process.env.UI_CALL_ID;
const durationMs = Number(process.env.UI_CALL_MS);
const callerNumber = process.env.UI_CALLER;
const staffExtension = process.env.UI_STAFF_EXT;
const sipCallId = process.env.UI_SIP_CALL_ID;
const artifacts = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});

function check(ok, what) {
  if (!ok) { console.log(`FAIL ${what}`); throw new Error(what); }
  console.log(`ok   ${what}`);
}

// axe-core's WCAG 2.1 A and AA rules on the page as it is now. Evaluated through the
// DevTools protocol (not a script tag), so the page's own CSP stays in force.
const axeSource = readFileSync(axeScript, 'utf8');
async function accessible(page, what) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const problems = result.violations.map((v) =>
    `${v.id} (${v.impact}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  check(problems.length === 0, `${what}: no WCAG 2.1 AA violation (axe-core ${result.testEngine.version})${problems.length ? ': ' + problems.join('; ') : ''}`);
}

// Every page keeps to its Content-Security-Policy: the browser's reports are collected and
// must be none.
const cspViolations = [];
function watchCsp(page) {
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(`${page.url()}: ${m.text()}`); });
  return page;
}

async function signIn(user, secret = password) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = watchCsp(await context.newPage());
  await page.goto(`${base}/login`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForLoadState('networkidle');
  return { context, page };
}

let failed = false;
try {
  // a wrong password is refused
  {
    const context = await browser.newContext();
    const page = watchCsp(await context.newPage());
    await page.goto(`${base}/login`);
    await page.getByLabel('User name').fill('pat');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    check(await page.getByRole('alert').isVisible(), 'a wrong password is refused with a message');
    await page.screenshot({ path: path.join(artifacts, 'login.png') });
    await accessible(page, 'the login page');
    await context.close();
  }
  // each role sees its pages and nothing else
  const nav = { pat: ['Search calls'], dora: ['Search calls', 'Data protection'], aud: ['Audit log'], adam: ['Users and agents', 'Operations', 'Signalling'], stef: ['Who listened to my calls'] };
  for (const [user, links] of Object.entries(nav)) {
    const { context, page } = await signIn(user);
    const shown = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    check(JSON.stringify(shown) === JSON.stringify(links), `${user} sees ${JSON.stringify(links)} (saw ${JSON.stringify(shown)})`);
    const search = await page.goto(`${base}/search`);
    check((search.status() === 200) === links.includes('Search calls'), `${user}: search page ${search.status()}`);
    const audit = await page.goto(`${base}/audit`);
    check((audit.status() === 200) === (user === 'aud' || user === 'stef'), `${user}: audit page ${audit.status()}`);
    await context.close();
  }
  // a manager searches, opens the call, is refused the player without a purpose, gives one
  {
    const { context, page } = await signIn('pat');
    await page.goto(`${base}/search`);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('networkidle');
    check(page.url() === `${base}/search`, 'the search is POSTed: no filter in the URL');
    const rows = await page.locator('tbody tr').count();
    check(rows === 1, `the Parking manager finds 1 call (found ${rows})`);
    await page.screenshot({ path: path.join(artifacts, 'search.png'), fullPage: true });
    await accessible(page, 'the search page');
    // the manager's report: the calls found, as CSV
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /Download as CSV/ }).click(),
    ]);
    const csvPath = path.join(artifacts, 'calls.csv');
    await csv.saveAs(csvPath);
    const csvText = (await import('node:fs')).readFileSync(csvPath, 'utf8');
    check(csvText.startsWith('call_id,') && csvText.includes(callId) && csvText.trim().split('\n').length === 2, 'the manager downloads the calls found as CSV');
    // a number in national format with spaces finds the call; a typo in a filter is refused with a message
    if (callerNumber.startsWith('+44')) {
      await page.getByLabel('Caller number').fill(`0${callerNumber.slice(3, 7)} ${callerNumber.slice(7)}`);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForLoadState('networkidle');
      check(await page.locator('tbody tr').count() === 1, 'a caller number in national format finds the call');
      await page.getByLabel('Caller number').fill('');
    }
    await page.getByLabel('From').fill('2026-03-05');
    await page.getByLabel('To (exclusive)').fill('2026-03-01');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('networkidle');
    check((await page.getByRole('alert').textContent()).includes('from is not before to'), 'a From after the To is refused with what to fix');
    await page.getByLabel('From').fill('');
    await page.getByLabel('To (exclusive)').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForLoadState('networkidle');
    await page.getByRole('link', { name: /Open/ }).first().click();
    await page.waitForLoadState('networkidle');
    check(page.url() === `${base}/calls/${callId}`, 'the call page is addressed by its id only');
    check(await page.locator('audio').count() === 0, 'no player before a purpose is given');
    check(await page.locator('svg.ladder').count() === 1, 'the call page shows the SIP ladder');
    await page.locator('svg.ladder a text.msg').first().click();
    const invite = page.locator('#sip-1');
    check(await invite.evaluate((d) => d.open) && /^INVITE sip:/.test((await invite.locator('pre').textContent()).trim()), 'clicking a message of the ladder shows its full text');
    check((await invite.locator('pre').textContent()).includes(callerNumber.slice(-6)), 'with the numbers, for a manager of the service');
    {
      const rows = await page.locator('#quality tbody tr').allTextContents();
      check(rows.length === 2 && rows.every((r) => /PCM[AU]|G722/.test(r) && /\d\.\d ms/.test(r) && /[1-4]\.\d$/.test(r.trim())), `the call page shows each direction's codec, loss, jitter and MOS (${rows.join(' | ')})`);
    }
    await page.getByRole('button', { name: 'Listen' }).click();
    check(await page.locator('audio').count() === 0, 'the form does not submit without a purpose');
    await page.getByLabel('Purpose').selectOption('complaint');
    await page.getByLabel(/Reference/).fill('C-2026-0042');
    await page.getByRole('button', { name: 'Listen' }).click();
    await page.waitForLoadState('networkidle');
    const audio = page.locator('audio#player');
    check(await audio.count() === 1, 'the player appears once a purpose and reference are given');
    const state = await audio.evaluate(async (a) => {
      a.muted = true;
      await a.play();
      await new Promise((resolve) => { if (!a.paused && a.currentTime > 0) resolve(); else a.addEventListener('timeupdate', resolve, { once: true }); });
      return { paused: a.paused, duration: a.duration, readyState: a.readyState };
    });
    check(!state.paused, 'the audio reaches a playing state');
    check(Math.abs(state.duration * 1000 - durationMs) < 600, `its duration matches the call (${state.duration.toFixed(2)} s, call ${durationMs} ms)`);
    // seeking works (Range requests)
    const seeked = await audio.evaluate(async (a) => {
      a.currentTime = a.duration / 2;
      await new Promise((resolve) => a.addEventListener('seeked', resolve, { once: true }));
      return a.currentTime;
    });
    check(seeked > 0, `seeking to the middle works (${seeked.toFixed(2)} s)`);
    // the waveform: a time axis, zoom in and out
    await audio.evaluate((a) => a.pause());
    check(/^Whole call, \d+:\d\d$/.test(await page.locator('#wave-zoom').textContent()), 'the waveform shows the whole call at first');
    await page.getByRole('button', { name: 'Zoom in' }).click();
    await page.getByRole('button', { name: 'Zoom in' }).click();
    const zoomed = await page.locator('#wave-zoom').textContent();
    check(/^Showing \d+:\d\d(\.\d)? – \d+:\d\d(\.\d)? of \d+:\d\d$/.test(zoomed), `zooming in shows a part of the call (${zoomed})`);
    await page.getByRole('button', { name: 'Whole call' }).click();
    check((await page.locator('#wave-zoom').textContent()).startsWith('Whole call'), 'and back to the whole call');
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(artifacts, 'call.png'), fullPage: true });
    await accessible(page, 'the call page');
    await context.close();
  }
  // the same path with the keyboard alone: sign in, search, open the call, state a purpose
  {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = watchCsp(await context.newPage());
    // Tab until `target` has the focus (it must be reachable, in a sensible number of steps)
    const tabTo = async (target, what) => {
      for (let i = 0; i < 60; i++) {
        if (await target.evaluate((el) => el === document.activeElement)) return;
        await page.keyboard.press('Tab');
      }
      check(false, `${what} is reachable with Tab`);
    };
    await page.goto(`${base}/login`);
    await tabTo(page.getByLabel('User name'), 'the user name field');
    await page.keyboard.type('pat');
    await page.keyboard.press('Tab');
    await page.keyboard.type(password);
    await page.keyboard.press('Enter');
    await page.waitForLoadState('networkidle');
    await tabTo(page.getByRole('link', { name: 'Search calls' }), 'the search link');
    await page.keyboard.press('Enter');
    await page.waitForLoadState('networkidle');
    await tabTo(page.getByRole('button', { name: 'Search' }), 'the search button');
    await page.keyboard.press('Enter');
    await page.waitForLoadState('networkidle');
    await tabTo(page.getByRole('link', { name: /Open/ }).first(), 'the first result');
    await page.keyboard.press('Enter');
    await page.waitForLoadState('networkidle');
    await tabTo(page.getByLabel('Purpose'), 'the purpose');
    await page.keyboard.type('Complaint');
    await tabTo(page.getByLabel(/Reference/), 'the reference');
    await page.keyboard.type('C-2026-0043');
    await page.keyboard.press('Enter');
    // the form's navigation may not have begun when Enter returns: wait for its outcome
    // (networkidle alone can resolve on the page being left)
    await page.locator('audio#player').waitFor({ timeout: 10000 }).catch(() => {});
    check(await page.locator('audio#player').count() === 1, 'a manager reaches the player with the keyboard alone');
    await tabTo(page.locator('audio#player'), 'the player');
    await context.close();
  }
  // the retrieval is in the audit log at once, and the chain verifies
  {
    const { context, page } = await signIn('aud');
    await page.goto(`${base}/audit`);
    const row = page.locator('tbody tr', { hasText: 'C-2026-0042' });
    check(await row.count() === 1, 'the auditor sees the retrieval with its reference');
    check((await row.textContent()).includes('pat') && (await row.textContent()).includes('Complaint or ombudsman investigation'), 'with who and why, the purpose by its name');
    const searched = await page.locator('tbody tr', { hasText: 'searched calls' }).first().locator('td.detail').textContent();
    check(/filters\./.test(searched) && /total: \d/.test(searched), `and what a search asked for (${searched})`);
    const signIn1 = await page.locator('tbody tr', { hasText: 'signed in' }).first().locator('td.detail').textContent();
    check(signIn1.includes('from: 127.0.0.1'), `and where a sign-in came from (${signIn1})`);
    check(await page.locator('#chain.ok').count() === 1, 'the audit page says the hash chain verifies');
    await page.screenshot({ path: path.join(artifacts, 'audit.png'), fullPage: true });
    await accessible(page, 'the audit page');
    await context.close();
  }
  // the DPO: legal hold, subject-access bundle, a training agreement and a training export
  {
    const { context, page } = await signIn('dora');
    await page.goto(`${base}/calls/${callId}`);
    await page.getByLabel('Reason (case or claim reference)').fill('claim LP-9');
    await page.getByRole('button', { name: 'Place under legal hold' }).click();
    await page.waitForLoadState('networkidle');
    check((await page.locator('#retention').textContent()).includes('under legal hold'), 'the DPO places the call under legal hold');
    await page.screenshot({ path: path.join(artifacts, 'dpo-call.png'), fullPage: true });
    await accessible(page, 'the dpo-call page');
    await page.goto(`${base}/dpo`);
    // the request comes in national format, with spaces: the same number
    const national = callerNumber.startsWith('+44') ? `0${callerNumber.slice(3, 7)} ${callerNumber.slice(7)}` : callerNumber;
    await page.getByLabel(/Caller number/).fill(national);
    await page.getByLabel('Request reference').fill('SAR-2026-017');
    await page.getByRole('button', { name: 'Find the calls' }).click();
    await page.waitForLoadState('networkidle');
    const found = await page.locator('#sar-found').textContent();
    check(found.includes('1 call(s)') && found.includes(callerNumber), `the DPO sees how many calls a request in national format finds before the download (${national})`);
    const [sar] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /^Download the bundle/ }).click(),
    ]);
    const sarPath = path.join(artifacts, 'subject-access.tar');
    await sar.saveAs(sarPath);
    const { statSync } = await import('node:fs');
    check(sar.suggestedFilename() === 'subject-access.tar' && statSync(sarPath).size > 10000, `a subject-access bundle is downloaded (${statSync(sarPath).size} bytes)`);
    await page.getByLabel('Extension').fill(staffExtension);
    await page.getByRole('button', { name: 'Record' }).click();
    check(await page.getByRole('status').isVisible(), 'a training agreement is recorded');
    await page.screenshot({ path: path.join(artifacts, 'dpo.png'), fullPage: true });
    await accessible(page, 'the dpo page');
    await page.goto(`${base}/calls/${callId}`);
    await page.getByLabel('Training reference').fill('TRN-4');
    const [training] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /Export for training/ }).click(),
    ]);
    check(training.suggestedFilename() === 'training.tar', 'a training export is downloaded');
    await context.close();
  }
  // the auditor filters the log
  {
    const { context, page } = await signIn('aud');
    await page.goto(`${base}/audit`);
    await page.getByLabel('What').selectOption('hold_on');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForLoadState('networkidle');
    const rows = page.locator('tbody tr');
    check(await rows.count() === 1 && (await rows.first().textContent()).includes('claim LP-9'), 'the auditor filters the log to the legal hold');
    await context.close();
  }
  // the admin: users and agents, a user added, and a call's signalling without its caller
  {
    const { context, page } = await signIn('adam');
    await page.goto(`${base}/admin`);
    check(await page.locator('tbody tr', { hasText: 'pat' }).count() === 1, 'the admin sees the users');
    check(await page.locator('tbody tr', { hasText: 'callvault-agent' }).count() === 1, 'and the agents');
    await accessible(page, 'the admin page');
    await page.getByLabel('User name').fill('newbie');
    await page.getByLabel(/^Password/).fill('a long enough password');
    await page.getByLabel('Role').selectOption('manager');
    const addForm = page.getByRole('form', { name: 'Add a user' });
    check(await addForm.getByRole('checkbox').count() === 2, "a manager's services are chosen from those the agents report");
    await addForm.getByLabel('Parking').check();
    await page.getByRole('button', { name: 'Add user' }).click();
    const added = await page.locator('#message').textContent();
    check(added.includes('newbie') && added.includes('a DPO must approve'), 'the admin adds a manager, who waits for a DPO');
    // offboarding: a leaver disabled, with the reason
    await page.getByText('Change sam').click();
    const samForm = page.getByRole('form', { name: 'Disable, enable, reset or delete sam' });
    await samForm.getByLabel(/^Why/).fill('left the council');
    await samForm.getByRole('button', { name: 'Disable sam' }).click();
    await page.waitForLoadState('networkidle');
    check((await page.locator('#message').textContent()).includes('sam is disabled'), 'the admin disables a leaver');
    check((await page.locator('tbody tr', { hasText: 'sam' }).first().textContent()).includes('disabled'), 'who is shown disabled');
    // a forgotten password: reset, handed over, replaced at sign-in
    await page.getByText('Change stef').click();
    const stefForm = page.getByRole('form', { name: 'Disable, enable, reset or delete stef' });
    await stefForm.getByLabel(/^Why/).fill('forgot it');
    await stefForm.getByRole('button', { name: 'Reset password of stef' }).click();
    await page.waitForLoadState('networkidle');
    const temporary = (await page.locator('#temporary-password code').textContent()).trim();
    check(/^[a-z2-9]{20}$/.test(temporary), 'the admin resets a password and sees the temporary one once');
    await accessible(page, 'the admin page after a reset');
    {
      const other = await browser.newContext({ viewport: { width: 1200, height: 900 } });
      const p2 = watchCsp(await other.newPage());
      await p2.goto(`${base}/login`);
      await p2.getByLabel('User name').fill('stef');
      await p2.getByLabel('Password').fill(temporary);
      await p2.getByRole('button', { name: 'Sign in' }).click();
      await p2.waitForLoadState('networkidle');
      check((await p2.getByRole('alert').textContent()).includes('choose a new one'), 'the temporary password asks for a new one');
      await p2.getByLabel('Current password').fill(temporary);
      await p2.getByLabel(/^New password \(/).fill('stef chose this one');
      await p2.getByLabel('New password again').fill('stef chose this one');
      await p2.getByRole('button', { name: 'Set the new password and sign in' }).click();
      await p2.waitForLoadState('networkidle');
      check((await p2.getByRole('navigation').textContent()).includes('Who listened'), 'and the member of staff is signed in with their own');
      await other.close();
    }
    await page.getByLabel(/Agent name/).fill('site-2');
    await page.getByRole('button', { name: 'Register agent' }).click();
    const token = await page.locator('#new-token code').last().textContent();
    check(/^[0-9a-f]{64}$/.test(token), 'the admin registers an agent and sees its token once');
    await page.goto(`${base}/admin/signalling`);
    await page.getByLabel('SIP Call-ID', { exact: true }).fill(sipCallId);
    await page.getByRole('button', { name: 'Show' }).click();
    await page.waitForLoadState('networkidle');
    const arrows = await page.locator('svg.ladder line[marker-end]').count();
    check(arrows >= 4, `the admin sees the call's SIP ladder (${arrows} messages)`);
    await page.locator('svg.ladder a text.msg').first().click();
    const masked = await page.locator('#sip-1 pre').textContent();
    check(await page.locator('#sip-1').evaluate((d) => d.open) && masked.includes('sip:•••@') && /CSeq: \S+ INVITE/.test(masked), `and each message in full, numbers masked (${masked.slice(0, 160)})`);
    check((await page.locator('#decision').textContent()).includes('Parking'), 'and why it was recorded');
    check(!(await page.content()).includes(callerNumber), "but not the caller's number");
    await page.screenshot({ path: path.join(artifacts, 'signalling.png'), fullPage: true });
    await accessible(page, 'the signalling page');
    // operations: each agent's health, the calls being recorded now (no numbers)
    await page.goto(`${base}/admin/operations`);
    const edge = await page.locator('#agents-health tbody tr', { hasText: 'edge-2' }).textContent();
    check(/recording/.test(edge) && /s ago/.test(edge) && /3 waiting/.test(edge), `the admin sees an agent's health (${edge.replace(/\s+/g, ' ')})`);
    const quiet = page.locator('#agents-health tbody tr.alarm', { hasText: 'site-2' });
    check(await quiet.count() === 1 && /has not reported/.test(await quiet.textContent()), 'and an agent that never reported, flagged');
    const live = await page.locator('#live-calls tbody tr').allTextContents();
    check(live.length === 1 && /Parking/.test(live[0]) && /talking/.test(live[0]) && /1:\d\d/.test(live[0]), `and the call being recorded now (${live.join(' | ')})`);
    check(!(await page.content()).includes(callerNumber), 'with no number on the page');
    await page.screenshot({ path: path.join(artifacts, 'operations.png'), fullPage: true });
    await accessible(page, 'the operations page');
    await context.close();
  }
  // the second person: the DPO approves the manager the admin added
  {
    const { context, page } = await signIn('dora');
    await page.goto(`${base}/dpo`);
    await page.getByRole('button', { name: 'Approve newbie' }).click();
    await page.waitForLoadState('networkidle');
    check((await page.getByRole('status').textContent()).includes('Approved for newbie'), 'the DPO approves the account');
    await accessible(page, 'the dpo page with an approval');
    await context.close();
  }
  // single sign-on: a real OpenID provider (oidc-provider) signs people in with the
  // directory; its groups give the role, a claim the services, and a listening account
  // waits for a DPO the first time
  {
    const viaDirectory = async (login) => {
      const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
      const page = await context.newPage();
      await page.goto(`${base}/login`);
      await page.getByRole('link', { name: 'Sign in with the council directory' }).click();
      // the provider's own pages: its sign-in form, then its consent
      for (let i = 0; i < 5; i++) {
        await page.waitForLoadState('networkidle');
        if (page.url().startsWith(base)) break;
        const box = page.locator('input[name=login]');
        if (await box.count()) {
          await box.fill(login);
          await page.locator('input[name=password]').fill('directory password');
        }
        const submit = page.locator('button[type=submit]');
        if (!(await submit.count())) {
          check(false, `the provider's page has a form (${page.url()}: ${(await page.textContent('body')).slice(0, 300)})`);
        }
        await submit.first().click();
      }
      await page.waitForLoadState('networkidle');
      return { context, page };
    };
    {
      const { context, page } = await viaDirectory('olive');
      const alert = await page.getByRole('alert').textContent();
      check(alert.includes('data-protection officer approves'), `a directory manager signs in with PKCE and waits for a DPO the first time (${alert})`);
      await accessible(page, 'the login page after single sign-on');
      await context.close();
    }
    {
      const { context, page } = await signIn('dora');
      await page.goto(`${base}/dpo`);
      const row = await page.locator('tbody tr', { hasText: 'olive' }).textContent();
      check(row.includes('a new account, from the directory') && row.includes('Parking'), "the DPO sees the directory's account with its claimed services");
      await page.getByRole('button', { name: 'Approve olive' }).click();
      await page.waitForLoadState('networkidle');
      const done = await page.getByRole('status').textContent();
      check(done.includes('Approved for olive') && !done.includes('set-up code'), 'and approves it (no set-up code: the directory holds the second factor)');
      await context.close();
    }
    {
      const { context, page } = await viaDirectory('olive');
      check(page.url() === `${base}/` || page.url().startsWith(`${base}/search`), `the approved manager lands signed in (${page.url()})`);
      check((await page.locator('.who').textContent()).includes('olive (manager)'), 'as the directory names them, with the role its groups give');
      await page.goto(`${base}/search`);
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForLoadState('networkidle');
      check((await page.content()).includes(callId), "and finds the calls of the services the directory gives");
      await page.screenshot({ path: path.join(artifacts, 'sso.png'), fullPage: true });
      await context.close();
    }
    {
      const { context, page } = await viaDirectory('pam');
      check((await page.getByRole('alert').textContent()).includes('second factor'), 'a manager signed in to the directory with a password alone is refused');
      await context.close();
    }
    {
      const { context, page } = await viaDirectory('nobody');
      check((await page.getByRole('alert').textContent()).includes('no group'), 'someone in no callvault group is refused, saying why');
      // an answer this browser did not ask for (a code injected with a forged state)
      const forged = await page.goto(`${base}/login/oidc/callback?code=stolen&state=forged`);
      check(forged.status() === 400 && (await page.getByRole('alert').textContent()).includes('not started in this browser'), 'an answer to a sign-in this browser did not start is refused');
      await context.close();
    }
  }
  // cross-site request forgery: a page on another port of the same host (the same site, so
  // SameSite=Strict cookies are sent) auto-submits forms to the catalogue in a signed-in browser
  {
    const escape = (v) => String(v).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    const forms = {
      '/restrict': [`/calls/${callId}/restrict`, { on: '1', reason: 'FORGED-R' }],
      '/listen': [`/calls/${callId}/listen`, { purpose: 'complaint', reference: 'FORGED-L' }],
      '/add-user': ['/admin/users', { username: 'mallory', password: 'a long enough password', role: 'dpo', services: '' }],
      '/login': ['/login', { username: 'pat', password }],
    };
    const evil = http.createServer((req, res) => {
      const form = forms[new URL(req.url, 'http://x').pathname];
      if (!form) { res.writeHead(404); res.end(); return; }
      const [action, fields] = form;
      const inputs = Object.entries(fields).map(([k, v]) => `<input type="hidden" name="${k}" value="${escape(v)}">`).join('');
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>prize</title><form method="post" action="${base}${action}">${inputs}</form><script>document.forms[0].submit()</script>`);
    });
    await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilBase = `http://127.0.0.1:${evil.address().port}`;
    // visits the attacker's page; returns the catalogue's answer to the forged POST
    const forge = async (page, which) => {
      const [answer] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(base) && r.request().method() === 'POST'),
        page.goto(`${evilBase}${which}`),
      ]);
      return answer.status();
    };
    {
      const { context, page } = await signIn('dora');
      check(await forge(page, '/restrict') === 403, 'a forged restriction from another origin is refused (403)');
      await page.goto(`${base}/calls/${callId}`);
      check(await page.getByRole('button', { name: 'Restrict' }).count() === 1, 'and the call is not restricted');
      await context.close();
    }
    {
      const { context, page } = await signIn('pat');
      check(await forge(page, '/listen') === 403, "a forged retrieval in a manager's name is refused (403)");
      await context.close();
    }
    {
      const { context, page } = await signIn('adam');
      check(await forge(page, '/add-user') === 403, 'a forged new DPO account is refused (403)');
      await page.goto(`${base}/admin`);
      check(await page.locator('tbody tr', { hasText: 'mallory' }).count() === 0, 'and no account was made');
      await context.close();
    }
    {
      const context = await browser.newContext();
      const page = await context.newPage();
      check(await forge(page, '/login') === 403, 'a forged sign-in (login CSRF) is refused (403)');
      const after = await page.goto(`${base}/search`);
      check(after.url().endsWith('/login'), 'and the browser is not signed in as the attacker');
      await context.close();
    }
    {
      const { context, page } = await signIn('aud');
      await page.goto(`${base}/audit`);
      check(await page.locator('tbody tr', { hasText: 'FORGED-L' }).count() === 0, 'no forged retrieval record is in the audit log');
      await page.getByLabel('What').selectOption('csrf_refused');
      await page.getByRole('button', { name: 'Filter' }).click();
      await page.waitForLoadState('networkidle');
      const refused = await page.locator('tbody tr').count();
      check(refused === 3, `the three refusals in signed-in browsers are audited (${refused})`);
      await context.close();
    }
    evil.close();
  }
  // every page fits a phone's width: wide tables scroll inside themselves, the page does not
  {
    const fits = async (page, what) => {
      await page.setViewportSize({ width: 375, height: 800 });
      const { scroll, inner, wide } = await page.evaluate(() => {
        const inner = window.innerWidth;
        // the outermost elements that stick out, to say what to fix
        const wide = [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > inner + 1 && !e.closest('.scroll, .ladder-wrap'))
          .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
          .slice(0, 4)
          .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className && typeof e.className === 'string' ? '.' + e.className : ''}`);
        return { scroll: document.documentElement.scrollWidth, inner, wide };
      });
      check(scroll <= inner, `${what} fits a phone's width (${scroll} px of ${inner}${wide.length ? ': ' + wide.join(', ') : ''})`);
    };
    for (const [user, pages] of [['pat', ['/search', `/calls/${callId}`]], ['aud', ['/audit']], ['adam', ['/admin', '/admin/operations']]]) {
      const { context, page } = await signIn(user);
      for (const p of pages) {
        await page.goto(`${base}${p}`);
        if (p === '/search') {
          await page.getByRole('button', { name: 'Search' }).click();
          await page.waitForLoadState('networkidle');
        }
        await fits(page, `${p} (${user})`);
      }
      await context.close();
    }
  }
  // the member of staff on the call sees that someone listened to it
  {
    const { context, page } = await signIn('stef', 'stef chose this one');
    await page.goto(`${base}/audit`);
    check(await page.locator('tbody tr', { hasText: 'C-2026-0042' }).count() === 1, 'staff see the retrieval of their call');
    await context.close();
  }
  check(cspViolations.length === 0, `no page broke its Content-Security-Policy${cspViolations.length ? ': ' + cspViolations.slice(0, 3).join('; ') : ''}`);
} catch (e) {
  failed = true;
  console.log(`error: ${e.message}`);
}
await browser.close();
process.exit(failed ? 1 : 0);
