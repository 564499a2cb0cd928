// The demo page: trains SwAV in the browser on the built-in dataset or the user's images,
// shows the loss, the k-NN accuracy against the random-init network, the speed, the
// clusters and the kernel checks, and exports the backbone. window.swavState is read by
// web/test.mjs.
import init, { WebDemo } from './pkg/swav_wgpu.js';

const MAX_SIDE = 64; // as `--max-side` (src/web.rs MAX_SIDE)
const DEFAULTS = { lr: 0.006, batch: 32, prototypes: 256, crops: '2x32', epochs: 3, seed: 0 };
const state = {
  ready: false, checks: null, losses: [], tiles: 0, neighbours: 0, error: null,
  own: 0, skipped: 0, ownData: false, knn: [], knnBaseline: null, exported: 0,
};
window.swavState = state;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const knnEvery = Number(params.get('knn_every') || 50);
let demo = null;
let running = false;
// The user's decoded images (width, height, RGBA), kept so Reset can re-add them.
const ownImages = [];

function fail(message) {
  state.error = message;
  $('error').textContent = message;
  $('status').textContent = 'stopped';
}

function errorText(e) {
  const lost = demo && demo.device_lost();
  return lost ? `the GPU device was lost (${lost}); reload the page` : String(e);
}

function settings() {
  const get = (k) => params.get(k) ?? DEFAULTS[k];
  return { lr: Number(get('lr')), batch: Number(get('batch')), prototypes: Number(get('prototypes')), crops: String(get('crops')), epochs: Number(get('epochs')), seed: Number(get('seed')) };
}

function showSettings(s) {
  for (const k of Object.keys(DEFAULTS)) $(k).value = s[k];
}

// The settings form into the address (so a link reproduces the run).
function saveSettings() {
  for (const k of Object.keys(DEFAULTS)) params.set(k, $(k).value);
  history.replaceState(null, '', `${location.pathname}?${params}`);
}

function plot(canvas, title, series, baseline) {
  const c = $(canvas), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  g.fillStyle = '#333';
  g.font = '12px sans-serif';
  g.fillText(title, 8, 14);
  const values = series.map((p) => p[1]).concat(baseline == null ? [] : [baseline]);
  if (values.length < 1 || series.length < 1) return;
  const lo = Math.min(...values), hi = Math.max(...values);
  const x0 = series[0][0], x1 = Math.max(series[series.length - 1][0], x0 + 1);
  const x = (i) => 44 + (c.width - 54) * (i - x0) / (x1 - x0);
  const y = (v) => c.height - 20 - (c.height - 40) * (v - lo) / Math.max(hi - lo, 1e-6);
  g.fillText(hi.toFixed(2), 2, 28);
  g.fillText(lo.toFixed(2), 2, c.height - 20);
  if (baseline != null) {
    g.strokeStyle = '#999';
    g.setLineDash([5, 4]);
    g.beginPath();
    g.moveTo(44, y(baseline));
    g.lineTo(c.width - 10, y(baseline));
    g.stroke();
    g.setLineDash([]);
    g.fillText(`random init ${baseline.toFixed(1)} %`, c.width - 150, y(baseline) - 4);
  }
  g.strokeStyle = '#1f77b4';
  g.lineWidth = 2;
  g.beginPath();
  series.forEach(([i, v], n) => (n ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.stroke();
  if (series.length === 1) g.fillRect(x(series[0][0]) - 2, y(series[0][1]) - 2, 4, 4);
}

function drawPlots() {
  plot('loss', 'SwAV loss per step', state.losses.map((l, i) => [i + 1, l]));
  if (state.ownData) {
    plot('knn', 'k-NN top-1 (%): only on the labelled built-in data', []);
  } else {
    plot('knn', `k-NN top-1 (%) on the built-in test split, every ${knnEvery} steps`, state.knn.map((p) => [p.step, p.top1]), state.knnBaseline);
  }
}

function tile(img) {
  const cv = document.createElement('canvas');
  cv.width = 32;
  cv.height = 32;
  cv.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(demo.image_rgba(img)), 32, 32), 0, 0);
  cv.onclick = () => showNeighbours(img).catch((e) => fail(errorText(e)));
  return cv;
}

async function showNeighbours(img) {
  const near = await demo.neighbours(img, 12);
  const root = $('neighbours');
  root.textContent = '';
  const label = document.createElement('span');
  label.textContent = 'query →';
  root.appendChild(tile(img));
  root.appendChild(label);
  for (const n of near) root.appendChild(tile(n));
  state.neighbours = near.length;
}

async function drawClusters() {
  const pairs = await demo.assignments();
  const groups = new Map();
  for (let i = 0; i < pairs.length; i += 2) {
    if (!groups.has(pairs[i + 1])) groups.set(pairs[i + 1], []);
    groups.get(pairs[i + 1]).push(pairs[i]);
  }
  const root = $('clusters');
  root.textContent = '';
  let tiles = 0;
  for (const [proto, images] of [...groups.entries()].sort((a, b) => b[1].length - a[1].length).slice(0, 12)) {
    const row = document.createElement('div');
    row.className = 'cluster';
    const label = document.createElement('span');
    label.textContent = `prototype ${proto}`;
    row.appendChild(label);
    for (const img of images.slice(0, 16)) {
      row.appendChild(tile(img));
      tiles++;
    }
    root.appendChild(row);
  }
  state.tiles = tiles;
}

async function evaluate() {
  const top1 = await demo.knn();
  state.knn.push({ step: demo.iteration(), top1 });
  drawPlots();
}

async function loop() {
  const limit = Number(params.get('steps') || demo.total_steps());
  let images = 0, seconds = 0;
  while (running && state.losses.length < limit) {
    const t = performance.now();
    const loss = await demo.step();
    seconds += (performance.now() - t) / 1000;
    images += demo.batch_size();
    state.losses.push(loss);
    state.imgPerSecond = images / seconds;
    $('speed').textContent = `step ${demo.iteration()}/${limit}, loss ${loss.toFixed(4)}, ${state.imgPerSecond.toFixed(1)} img/s`;
    drawPlots();
    if (!Number.isFinite(loss)) { fail('the loss is not finite: stopped'); running = false; break; }
    if (state.losses.length % 5 === 0 || state.losses.length === 1) await drawClusters();
    if (!state.ownData && demo.iteration() % knnEvery === 0) await evaluate();
  }
  if (state.losses.length >= limit) {
    await drawClusters();
    // Show one neighbour query, as a click would.
    const first = document.querySelector('#clusters canvas');
    if (first) first.onclick();
  }
  $('status').textContent = running ? 'done' : 'paused';
  running = false;
}

// Decodes one file in the browser and shrinks it so its shorter side is at most MAX_SIDE
// (as the native loader's --max-side); null when it is not a decodable image.
async function decode(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null;
  }
  const s = Math.min(1, MAX_SIDE / Math.min(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * s)), h = Math.max(1, Math.round(bitmap.height * s));
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  const g = canvas.getContext('2d');
  g.imageSmoothingQuality = 'high';
  g.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  return { w, h, rgba: g.getImageData(0, 0, w, h).data };
}

function showOwn() {
  const need = demo ? demo.batch_size() : settings().batch;
  $('own').textContent = ownImages.length || state.skipped
    ? ` ${ownImages.length} of your images${state.skipped ? `, ${state.skipped} file(s) skipped (not an image this browser can decode)` : ''}${state.ownData ? ': training on them' : ownImages.length < need ? ` (need at least ${need}, one batch)` : ''}.`
    : '';
}

async function addFiles(files) {
  for (const f of files) {
    const img = await decode(f);
    if (!img) { state.skipped++; continue; }
    ownImages.push(img);
    state.own = demo.add_image(img.w, img.h, img.rgba);
  }
  if (ownImages.length >= demo.batch_size() && !state.ownData) {
    running = false;
    demo.train_on_own_images();
    state.ownData = true;
    state.losses = [];
    state.knn = [];
    $('clusters').textContent = '';
    $('status').textContent = 'ready: your images';
  }
  showOwn();
  drawPlots();
}

// Every file under dropped entries (folders walked recursively).
async function filesOf(entries) {
  const out = [];
  for (const entry of entries) {
    if (entry.isFile) {
      out.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        out.push(...(await filesOf(batch)));
      }
    }
  }
  return out;
}

async function setup() {
  const s = settings();
  showSettings(s);
  demo = await WebDemo.create(s.seed, s.lr, s.batch, s.prototypes, s.crops, s.epochs);
  state.losses = [];
  state.knn = [];
  state.ownData = false;
  state.adapter = demo.adapter();
  $('adapter').textContent = 'adapter: ' + state.adapter;
  for (const img of ownImages) state.own = demo.add_image(img.w, img.h, img.rgba);
  if (ownImages.length >= demo.batch_size()) {
    demo.train_on_own_images();
    state.ownData = true;
  } else {
    // The line to beat: the network this run starts from.
    $('status').textContent = 'scoring the random-init network (k-NN)…';
    state.knnBaseline = await demo.knn();
  }
  showOwn();
  drawPlots();
}

function download(name, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function exportModel() {
  download('backbone.safetensors', await demo.backbone(), 'application/octet-stream');
  download('config.toml', demo.config_toml(), 'text/plain');
  state.exported++;
}

async function main() {
  if (!navigator.gpu) {
    fail('This browser has no WebGPU. Use a recent Chrome, Edge or Firefox Nightly with WebGPU enabled (Chromium: --enable-unsafe-webgpu on Linux).');
    return;
  }
  try {
    await init();
    $('status').textContent = 'compiling the training step…';
    await setup();
    const checks = JSON.parse(await demo.kernel_checks());
    state.checks = checks;
    $('checks').innerHTML = checks.map((c) => `<div class="${c.pass ? 'pass' : 'fail'}">${c.pass ? '✔' : '✘'} ${c.name}: max relative error ${c.max_rel_err.toExponential(2)}</div>`).join('');
    state.ready = true;
    $('status').textContent = state.ownData ? 'ready: your images' : 'ready';
    for (const b of ['start', 'pause', 'reset', 'export']) $(b).disabled = false;
    $('start').onclick = () => { if (!running) { running = true; $('status').textContent = 'training…'; loop().catch((e) => fail(errorText(e))); } };
    $('pause').onclick = () => { running = false; };
    $('reset').onclick = async () => {
      running = false;
      saveSettings();
      $('clusters').textContent = '';
      try { await setup(); $('status').textContent = 'ready'; } catch (e) { fail(errorText(e)); }
    };
    $('export').onclick = () => exportModel().catch((e) => fail(errorText(e)));
    const onFiles = (list) => addFiles([...list]).catch((e) => fail(errorText(e)));
    $('files').onchange = (e) => onFiles(e.target.files);
    $('folder').onchange = (e) => onFiles(e.target.files);
    const drop = $('drop');
    drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
    drop.ondragleave = () => drop.classList.remove('over');
    drop.ondrop = (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
      (entries.length ? filesOf(entries) : Promise.resolve([...e.dataTransfer.files])).then(onFiles, (err) => fail(String(err)));
    };
    if (params.get('autostart')) $('start').onclick();
  } catch (e) {
    fail(errorText(e));
  }
}

main();
