// Browser test: serves web/, opens the demo in headless Chromium with WebGPU, and asserts:
// (1) your images: 40 generated PNGs and one corrupt file set on the file input through
// DevTools (DOM.setFileInputFiles) are decoded, the corrupt one is reported as skipped, the
// run trains on them (the loss falls), the model downloads and the native `swav-wgpu eval knn
// --checkpoint` reads the download; (2) on the built-in data, the in-browser kernel checks
// pass, the loss falls, clusters and neighbours are shown, and the k-NN accuracy rises above
// the random-init network's line. Saves screenshots/own-images.png and screenshots/demo.png.
// No npm packages: the DevTools protocol is spoken over --remote-debugging-pipe.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile, mkdir, writeFile, mkdtemp, readdir } from 'node:fs/promises';
import { join, extname, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const OWN_STEPS = Number(process.env.SWAV_WEB_OWN_STEPS || 12);
const STEPS = Number(process.env.SWAV_WEB_STEPS || 375);
const KNN_EVERY = Number(process.env.SWAV_WEB_KNN_EVERY || 75);
const TIMEOUT_MS = Number(process.env.SWAV_WEB_TIMEOUT_MS || 600000);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const NATIVE = process.env.SWAV_WGPU_BIN || join(here, '..', 'target', 'release', 'swav-wgpu');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css' };

// A PNG (8-bit RGB) from raw pixels: zlib from node, the CRC by table.
const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function png(w, h, pixel) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) raw.set(pixel(x, y), y * (w * 3 + 1) + 1 + x * 3);
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}
// 40 pictures of 4 kinds (stripes, rings, a square, a gradient) in random colours, 96x72
// (the page shrinks them to 85x64), and one file that is not an image.
async function pictures(dir) {
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const files = [];
  for (let i = 0; i < 40; i++) {
    const [a, b] = [0, 1].map(() => [rand(), rand(), rand()].map((v) => Math.floor(v * 255)));
    const kind = i % 4, f = 4 + Math.floor(rand() * 8), cx = 24 + rand() * 48, cy = 18 + rand() * 36;
    const p = png(96, 72, (x, y) => {
      const t = kind === 0 ? Math.floor(x / f) % 2 : kind === 1 ? Math.floor(Math.hypot(x - cx, y - cy) / f) % 2
        : kind === 2 ? +(Math.abs(x - cx) < 12 && Math.abs(y - cy) < 12) : x / 96;
      return a.map((v, c) => Math.round(v * (1 - t) + b[c] * t));
    });
    const path = join(dir, `picture-${i}.png`);
    await writeFile(path, p);
    files.push(path);
  }
  const bad = join(dir, 'not-an-image.png');
  await writeFile(bad, Buffer.from('this is not a PNG file at all'));
  files.push(bad);
  return files;
}

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
const base = `http://127.0.0.1:${server.address().port}/index.html`;

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

async function open(url) {
  const { targetId } = await send('Target.createTarget', { url });
  const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
  return { targetId, session: sessionId };
}
async function evaluate(session, expression) {
  const r = await send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, session);
  return r.result.value;
}
async function pageState(session) {
  return JSON.parse((await evaluate(session, 'JSON.stringify(window.swavState || null)')) || 'null');
}
// Polls the page until `done(state)` or `ms` pass; returns the last state.
async function waitFor(session, ms, done) {
  const until = Date.now() + ms;
  let state = null;
  while (Date.now() < until) {
    state = await pageState(session);
    if (state && (state.error || done(state))) break;
    await sleep(1000);
  }
  return state;
}
async function screenshot(session, name) {
  const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, session);
  await mkdir(join(here, '..', 'screenshots'), { recursive: true });
  await writeFile(join(here, '..', 'screenshots', name), Buffer.from(shot.data, 'base64'));
}
const brief = (s) => s && JSON.stringify({ ...s, checks: s.checks && s.checks.length, losses: s.losses && s.losses.map((l) => +l.toFixed(3)) });
const mean = (v) => v.reduce((a, b) => a + b, 0) / Math.max(v.length, 1);
const start = Date.now();

// (1) Your images.
try {
  const work = await mkdtemp(join(tmpdir(), 'swav-web-'));
  const files = await pictures(work);
  const downloads = join(work, 'downloads');
  await mkdir(downloads);
  await send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads });
  const { session } = await open(`${base}?batch=16&steps=${OWN_STEPS}`);
  let state = await waitFor(session, TIMEOUT_MS / 2, (s) => s.ready);
  const { root } = await send('DOM.getDocument', {}, session);
  const { nodeId } = await send('DOM.querySelector', { nodeId: root.nodeId, selector: '#files' }, session);
  await send('DOM.setFileInputFiles', { nodeId, files }, session);
  state = await waitFor(session, 60000, (s) => s.own + s.skipped >= files.length && s.ownData);
  check('40 pictures decoded, the corrupt file skipped and reported', state && state.own === 40 && state.skipped === 1 && state.ownData,
    state && `${state.own} images, ${state.skipped} skipped: "${await evaluate(session, "document.getElementById('own').textContent")}"`);
  await evaluate(session, "document.getElementById('start').click()");
  state = await waitFor(session, TIMEOUT_MS / 2, (s) => s.losses.length >= OWN_STEPS && s.tiles > 0);
  const l = (state && state.losses) || [];
  check(`on your images the loss falls over ${OWN_STEPS} steps`, l.length >= OWN_STEPS && mean(l.slice(-3)) < l[0],
    l.length ? `${l[0].toFixed(4)} -> ${l.slice(-3).map((v) => v.toFixed(4)).join(', ')}` : brief(state));
  await evaluate(session, "document.getElementById('export').click()");
  let names = [];
  for (let i = 0; i < 60 && !(names.includes('backbone.safetensors') && names.includes('config.toml')); i++) {
    await sleep(500);
    names = await readdir(downloads);
  }
  check('the model downloads (backbone.safetensors, config.toml)', names.includes('backbone.safetensors') && names.includes('config.toml'), names.join(', '));
  await screenshot(session, 'own-images.png');
  const native = spawnSync(NATIVE, ['eval', 'knn', '--checkpoint', join(downloads, 'backbone.safetensors')], { encoding: 'utf8', timeout: 300000 });
  check('the native `swav-wgpu eval knn --checkpoint` reads the download', native.status === 0 && /k-NN top-1/.test(native.stdout),
    (native.stdout || '').trim() || (native.stderr || String(native.error)).split('\n').filter((s) => !s.includes('XDG')).slice(-3).join(' | '));
} catch (e) {
  check('your-images page ran', false, e.message);
}

// (2) The built-in data: checks, learning, k-NN above the random-init line.
let state = null;
try {
  const { session } = await open(`${base}?autostart=1&steps=${STEPS}&knn_every=${KNN_EVERY}`);
  state = await waitFor(session, TIMEOUT_MS, (s) => s.checks && s.losses.length >= STEPS && s.knn.length >= Math.floor(STEPS / KNN_EVERY) && s.neighbours > 0);
  await screenshot(session, 'demo.png');
} catch (e) {
  console.log('browser error:', e.message);
}
const secs = ((Date.now() - start) / 1000).toFixed(0);
console.log(`built-in page state after ${secs} s: ${brief(state)}`);
check('page loaded without error', !!state && !state.error, state && state.error);
const checks = (state && state.checks) || [];
check('in-browser kernel checks pass', checks.length >= 5 && checks.every((c) => c.pass), checks.filter((c) => !c.pass).map((c) => c.name).join(', ') || `${checks.length} checks`);
const l = (state && state.losses) || [];
check(`loss after ${STEPS} steps is below the loss of step 1`, l.length >= STEPS && mean(l.slice(-5)) < l[0], l.length ? `${l[0]} -> ${mean(l.slice(-5))}` : 'no steps');
check('cluster tiles are shown', !!state && state.tiles > 0, `${state ? state.tiles : 0} tiles`);
check('nearest neighbours of a clicked image are shown', !!state && state.neighbours > 0, `${state ? state.neighbours : 0} neighbours`);
// f16 activations where the page's adapter has shader-f16, f32 elsewhere: either path trains
// (the checks above), and the adapter line says which one this adapter took.
const precision = state && state.adapter && (state.adapter.match(/; (f16|f32) activations;/) || [])[1];
check('the page stores activations as its adapter allows (f16 with shader-f16)', !!precision, `${precision} activations: ${state && state.adapter}`);
const knn = (state && state.knn) || [];
const last = knn.length ? knn[knn.length - 1].top1 : null;
check('k-NN rises above the random-init line', state && state.knnBaseline != null && last != null && last > state.knnBaseline,
  `random init ${state && state.knnBaseline} %, then ${knn.map((p) => `${p.step}: ${p.top1.toFixed(1)}`).join(', ')}; ${state && state.imgPerSecond && state.imgPerSecond.toFixed(1)} img/s`);
if (failed) console.log(browserLog.split('\n').filter((s) => s && !s.includes('unexpected operator')).slice(-20).join('\n'));
console.log(`${passed} passed, ${failed} failed`);
browser.kill();
server.close();
process.exit(failed ? 1 : 0);
