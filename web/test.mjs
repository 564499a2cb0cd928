// Browser test: serves web/, opens the demo in headless Chromium with WebGPU, and asserts that
// (a) the in-browser kernel checks pass, (b) after STEPS training steps the loss is below the
// loss of step 1, (c) cluster tiles are shown. Saves screenshots/demo.png. No npm packages:
// the DevTools protocol is spoken over --remote-debugging-pipe.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, mkdir, writeFile, mkdtemp } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const STEPS = Number(process.env.SWAV_WEB_STEPS || 8);
const TIMEOUT_MS = Number(process.env.SWAV_WEB_TIMEOUT_MS || 280000);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

const server = createServer(async (req, res) => {
  const path = join(here, decodeURIComponent(new URL(req.url, 'http://x').pathname.replace(/\/$/, '/index.html')));
  try {
    const body = await readFile(path);
    res.writeHead(200, { 'content-type': types[extname(path)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end('not found');
  }
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/index.html?autostart=1&steps=${STEPS}`;

const profile = await mkdtemp(join(tmpdir(), 'swav-chromium-'));
const flags = ['--headless=new', '--no-sandbox', '--disable-gpu-sandbox', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--enable-unsafe-webgpu', '--remote-debugging-pipe', 'about:blank'];
const browser = spawn(CHROMIUM, flags, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let browserLog = '';
browser.stderr.on('data', (d) => { browserLog += d; });
const toBrowser = browser.stdio[3];
const fromBrowser = browser.stdio[4];
let nextId = 1;
const pending = new Map();
let buffer = '';
fromBrowser.on('data', (chunk) => {
  buffer += chunk.toString();
  let end;
  while ((end = buffer.indexOf('\0')) >= 0) {
    const msg = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let passed = 0, failed = 0;
function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ': ' + detail : ''}`);
  ok ? passed++ : failed++;
}

const start = Date.now();
let state = null;
let session = null;
try {
  const { targetId } = await send('Target.createTarget', { url });
  ({ sessionId: session } = await send('Target.attachToTarget', { targetId, flatten: true }));
  while (Date.now() - start < TIMEOUT_MS) {
    const r = await send('Runtime.evaluate', { expression: 'JSON.stringify(window.swavState || null)', returnByValue: true }, session);
    state = JSON.parse(r.result.value || 'null');
    if (state && (state.error || (state.checks && state.losses.length >= STEPS && state.tiles > 0 && state.neighbours > 0))) break;
    await sleep(1000);
  }
  const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, session);
  await mkdir(join(here, '..', 'screenshots'), { recursive: true });
  await writeFile(join(here, '..', 'screenshots', 'demo.png'), Buffer.from(shot.data, 'base64'));
} catch (e) {
  console.log('browser error:', e.message);
}
const secs = ((Date.now() - start) / 1000).toFixed(0);
console.log(`page state after ${secs} s: ${JSON.stringify(state && { ...state, losses: state.losses && state.losses.map((l) => +l.toFixed(4)) })}`);
check('page loaded without error', !!state && !state.error, state && state.error);
const checks = (state && state.checks) || [];
check('in-browser kernel checks pass', checks.length >= 5 && checks.every((c) => c.pass), checks.filter((c) => !c.pass).map((c) => c.name).join(', ') || `${checks.length} checks`);
const l = (state && state.losses) || [];
check(`loss after ${STEPS} steps is below the loss of step 1`, l.length >= STEPS && l[l.length - 1] < l[0], l.length ? `${l[0]} -> ${l[l.length - 1]}` : 'no steps');
check('cluster tiles are shown', !!state && state.tiles > 0, `${state ? state.tiles : 0} tiles`);
check('nearest neighbours of a clicked image are shown', !!state && state.neighbours > 0, `${state ? state.neighbours : 0} neighbours`);
if (failed) console.log(browserLog.split('\n').filter((s) => s && !s.includes('unexpected operator')).slice(-20).join('\n'));
console.log(`${passed} passed, ${failed} failed`);
browser.kill();
server.close();
process.exit(failed ? 1 : 0);
