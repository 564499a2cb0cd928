// The demo page: trains SwAV on the built-in dataset in the browser and shows the loss, the
// speed, the clusters and the kernel checks. window.swavState is read by web/test.mjs.
import init, { WebDemo } from './pkg/swav_wgpu.js';

const state = { ready: false, checks: null, losses: [], tiles: 0, neighbours: 0, error: null };
window.swavState = state;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let demo = null;
let running = false;

function fail(message) {
  state.error = message;
  $('error').textContent = message;
  $('status').textContent = 'stopped';
}

function drawLoss() {
  const c = $('loss'), g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  const l = state.losses;
  g.fillStyle = '#333';
  g.font = '12px sans-serif';
  g.fillText('SwAV loss per step', 8, 14);
  if (l.length < 2) return;
  const lo = Math.min(...l), hi = Math.max(...l);
  const x = (i) => 40 + (c.width - 50) * i / (l.length - 1);
  const y = (v) => c.height - 20 - (c.height - 40) * (v - lo) / Math.max(hi - lo, 1e-6);
  g.fillText(hi.toFixed(3), 2, 28);
  g.fillText(lo.toFixed(3), 2, c.height - 20);
  g.strokeStyle = '#1f77b4';
  g.lineWidth = 2;
  g.beginPath();
  l.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
  g.stroke();
}

function tile(img) {
  const cv = document.createElement('canvas');
  cv.width = 32;
  cv.height = 32;
  cv.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(demo.image_rgba(img)), 32, 32), 0, 0);
  cv.onclick = () => showNeighbours(img).catch((e) => fail(String(e)));
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
  for (const [proto, images] of [...groups.entries()].sort((a, b) => b[1].length - a[1].length)) {
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

async function loop() {
  const limit = Number(params.get('steps') || Infinity);
  while (running && state.losses.length < limit) {
    const t = performance.now();
    const loss = await demo.step();
    const dt = (performance.now() - t) / 1000;
    state.losses.push(loss);
    $('speed').textContent = `step ${demo.iteration()}, loss ${loss.toFixed(4)}, ${(demo.batch_size() / dt).toFixed(1)} img/s`;
    drawLoss();
    if (!Number.isFinite(loss)) { fail('the loss is not finite: stopped'); running = false; break; }
    if (state.losses.length % 3 === 0 || state.losses.length === 1) await drawClusters();
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

async function setup(seed) {
  demo = await WebDemo.create(seed);
  state.losses = [];
  $('adapter').textContent = 'adapter: ' + demo.adapter();
}

async function main() {
  if (!navigator.gpu) {
    fail('This browser has no WebGPU. Use a recent Chrome, Edge or Firefox Nightly with WebGPU enabled (Chromium: --enable-unsafe-webgpu on Linux).');
    return;
  }
  try {
    await init();
    $('status').textContent = 'compiling the training step…';
    await setup(0);
    const checks = JSON.parse(await demo.kernel_checks());
    state.checks = checks;
    $('checks').innerHTML = checks.map((c) => `<div class="${c.pass ? 'pass' : 'fail'}">${c.pass ? '✔' : '✘'} ${c.name}: max relative error ${c.max_rel_err.toExponential(2)}</div>`).join('');
    state.ready = true;
    $('status').textContent = 'ready';
    for (const b of ['start', 'pause', 'reset']) $(b).disabled = false;
    $('start').onclick = () => { if (!running) { running = true; $('status').textContent = 'training…'; loop().catch((e) => fail(String(e))); } };
    $('pause').onclick = () => { running = false; };
    $('reset').onclick = async () => { running = false; await setup(Date.now() % 1000); drawLoss(); $('clusters').textContent = ''; $('status').textContent = 'ready'; };
    if (params.get('autostart')) $('start').onclick();
  } catch (e) {
    fail(String(e));
  }
}

main();
