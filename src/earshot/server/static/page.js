// earshot call page: WebSocket or WebRTC call, live transcripts, heard text, latency bars.
// No build step. All client times are performance.now() ms; the server maps them onto the
// call's session clock with the clock-sync exchange (docs/websocket.md).
'use strict';
const RATE = 16000;
const FRAME = 320;                  // 20 ms at 16 kHz
const LEAD_S = 0.06;                // client playout delay for a reply's first frame (WebSocket)
const SILENCE = 1e-3;               // peak below this is silence (≈ -60 dBFS)
const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#eeca3b', '#b279a2',
  '#ff9da6', '#9d755d', '#bab0ac', '#2f4b7c', '#a05195'];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const E = window.earshot = {
  state: 'idle', mode: null, callId: null, turns: [], events: [], errors: [], replies: {},
  played: { startFrame: null, chunks: [] }, agentText: {}, cleared: [],
  ctxToPerf: null, playedAudio: null, outDir: null,
};
let ctx = null, ws = null, pc = null, dc = null, mic = null, agentBus = null;
let seq = 0, pending = new Float32Array(0), pendingFrame = 0, nextFree = 0, reportTimer = null;

function log(kind, text) {
  const div = document.createElement('div');
  div.className = kind; div.textContent = text; $('log').appendChild(div);
  $('log').scrollTop = 1e9; return div;
}
function setStatus(s) { E.state = s; $('status').textContent = s; }

// ---- clocks ---------------------------------------------------------------------------
function ctxToPerf(ctxSeconds) {
  const ts = ctx.getOutputTimestamp();
  return ts.performanceTime + (ctxSeconds - ts.contextTime) * 1000;
}
E.ctxToPerf = (t) => ctxToPerf(t);
function outputLatencyMs() { return ((ctx.outputLatency || 0) + 0) * 1000; }

// ---- control messages ------------------------------------------------------------------
function send(obj) {
  const text = JSON.stringify(obj);
  if (E.mode === 'ws' && ws && ws.readyState === 1) ws.send(text);
  if (E.mode === 'webrtc' && dc && dc.readyState === 'open') dc.send(text);
}
function onControl(msg) {
  E.events.push(msg);
  switch (msg.type) {
    case 'sync': {
      const t1 = performance.now();
      send({ type: 'sync_reply', id: msg.id, t0_ms: msg.t0_ms, t1_ms: t1, t2_ms: performance.now() });
      break;
    }
    case 'ready': E.callId = msg.call_id; setStatus('in call'); if (E.mode === 'ws') startUplink(); break;
    case 'transcript':
      if (msg.final) { $('partial').textContent = ''; if (msg.text) log('user', msg.text); }
      else $('partial').textContent = msg.text;
      break;
    case 'agent_text': showAgent(msg); break;
    case 'clear': clearReply(msg.response_id); break;
    case 'response_start': onResponseStart(msg); break;
    case 'turn': addTurn(msg); break;
    case 'error': E.errors.push(msg); log('user', `error: ${msg.code}: ${msg.message}`); hangUp(false); break;
    case 'bye': E.outDir = msg.out_dir; setStatus(`call over: ${msg.turns} turns, outputs in ${msg.out_dir}`); hangUp(false); break;
  }
}

// ---- agent text with the heard part marked -----------------------------------------------
function showAgent(msg) {
  let el = E.agentText[msg.response_id];
  if (!el) { el = E.agentText[msg.response_id] = log('agent', ''); }
  el.textContent = '';
  if (msg.heard_text === null || msg.heard_text === undefined) { el.textContent = msg.text; return; }
  const heard = msg.heard_text;
  const m = document.createElement('mark'); m.textContent = heard; el.appendChild(m);
  const rest = msg.text.startsWith(heard) ? msg.text.slice(heard.length) : '';
  if (rest.trim()) { const s = document.createElement('span'); s.className = 'unheard'; s.textContent = rest; el.appendChild(s); }
}

// ---- latency bars ----------------------------------------------------------------------
const termColor = {};
function colorOf(name) {
  if (!(name in termColor)) termColor[name] = COLORS[Object.keys(termColor).length % COLORS.length];
  return termColor[name];
}
function addTurn(msg) {
  const rec = msg.record; E.turns.push(rec);
  const terms = rec.terms_ms || {};
  const total = rec.ttfat_ms;
  const row = document.createElement('div'); row.className = 'bar-row';
  const label = document.createElement('span'); label.textContent = `turn ${rec.turn}`;
  const bar = document.createElement('div'); bar.className = 'bar';
  const maxMs = Math.max(2000, ...E.turns.map((t) => t.ttfat_ms || 0));
  for (const [name, ms] of Object.entries(terms)) {
    if (!(ms > 0)) continue;
    const seg = document.createElement('div');
    seg.style.width = `${(100 * ms) / maxMs}%`; seg.style.background = colorOf(name);
    seg.title = `${name}: ${ms.toFixed(1)} ms`; bar.appendChild(seg);
  }
  const val = document.createElement('span');
  val.textContent = total === null ? '—' : `${Math.round(total)} ms`;
  row.append(label, bar, val); $('bars').appendChild(row);
  $('legend').innerHTML = Object.keys(termColor).map((n) => `<span><i style="background:${termColor[n]}"></i>${n}</span>`).join('');
  const f = (v) => (v === null || v === undefined ? '—' : `${Math.round(v)} ms`);
  $('pct').textContent = `TTFAT p50 ${f(msg.ttfat_p50_ms)} · p95 ${f(msg.ttfat_p95_ms)} (${E.turns.length} turns)`;
  if (rec.sync_error_ms !== undefined) $('sync').textContent = `clock-sync error bound ±${rec.sync_error_ms.toFixed(1)} ms`;
}

// ---- what the page played ------------------------------------------------------------------
function onTap(ev) {
  const { frame, samples } = ev.data;
  if (E.played.startFrame === null) E.played.startFrame = frame;
  E.played.chunks.push({ frame, samples });
  for (const r of Object.values(E.replies)) {
    if (E.mode !== 'webrtc' || r.heardCtx !== null || r.cleared) continue;
    if (frame / ctx.sampleRate < r.armedCtx) continue;
    for (let i = 0; i < samples.length; i++) {
      if (Math.abs(samples[i]) > SILENCE) { r.heardCtx = (frame + i) / ctx.sampleRate; r.lastLoud = r.heardCtx; break; }
    }
  }
  if (E.mode === 'webrtc') {
    for (const r of Object.values(E.replies)) {
      if (r.heardCtx === null || r.cleared || r.ended) continue;
      let loud = false;
      for (let i = 0; i < samples.length; i++) if (Math.abs(samples[i]) > SILENCE) { loud = true; break; }
      const t = (frame + samples.length) / ctx.sampleRate;
      if (loud) r.lastLoud = t; else if (t - r.lastLoud > 0.4) { r.ended = true; r.endCtx = r.lastLoud; }
    }
  }
}
E.playedAudio = () => {
  // What the page played of the agent, as one array from startFrame (gaps filled with 0).
  const last = E.played.chunks[E.played.chunks.length - 1];
  const n = last ? last.frame + last.samples.length - E.played.startFrame : 0;
  const out = new Float32Array(n);
  for (const c of E.played.chunks) out.set(c.samples, c.frame - E.played.startFrame);
  return { startFrame: E.played.startFrame, rate: ctx.sampleRate, samples: Array.from(out) };
};
E.searchFromCtx = (r) => {
  // Where this reply's audio may begin: not before it arrived (WebSocket: the lead before its
  // scheduled start; WebRTC: its response_start) nor before the reply before it stopped.
  let from = r.origin === 'audio' ? r.startCtx - 0.1 : r.armedCtx;
  for (const o of Object.values(E.replies)) {
    if (o === r || o.origin !== 'audio' || o.startCtx >= r.startCtx) continue;
    let end = o.startCtx + o.scheduled / RATE;
    if (o.cleared) end = Math.min(end, o.clearedCtx);
    from = Math.max(from, end);
  }
  return from;
};
E.firstAudibleCtx = (afterCtx) => {
  for (const c of E.played.chunks) {
    for (let i = 0; i < c.samples.length; i++) {
      const t = (c.frame + i) / ctx.sampleRate;
      if (t >= afterCtx && Math.abs(c.samples[i]) > SILENCE) return t;
    }
  }
  return null;
};

// ---- downlink playout (WebSocket) ---------------------------------------------------------
function onAudio(buf) {
  const dv = new DataView(buf);
  const first = (dv.getUint8(1) & 1) === 1;
  const rid = dv.getUint32(8, true), pos = dv.getUint32(12, true);
  const pcm = new Int16Array(buf.slice(24));
  let r = E.replies[rid];
  const now = ctx.currentTime;
  if (!r) {
    const start = Math.max(now + LEAD_S, nextFree);
    r = E.replies[rid] = newReply(rid, start, performance.now(), 'audio');
  }
  if (r.cleared) return;
  const ab = ctx.createBuffer(1, pcm.length, RATE);
  const ch = ab.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
  const src = ctx.createBufferSource(); src.buffer = ab; src.connect(agentBus);
  const at = r.startCtx + pos / RATE;
  src.start(Math.max(at, now)); r.sources.push(src);
  r.scheduled = Math.max(r.scheduled, pos + pcm.length);
  nextFree = Math.max(nextFree, r.startCtx + r.scheduled / RATE);
  void first;
}
function newReply(rid, startCtx, receivedPerf, origin) {
  return { rid, startCtx, receivedPerf, origin, scheduled: 0, sources: [], cleared: false, clearedCtx: null,
    heardCtx: E.mode === 'ws' ? startCtx : null, armedCtx: 0, lastLoud: 0, ended: false, endCtx: null, lastReport: -1 };
}
function playedSamples(r, nowCtx) {
  if (r.heardCtx === null) return 0;
  let until = nowCtx - (ctx.outputLatency || 0);
  if (r.cleared) until = Math.min(until, r.clearedCtx);
  if (r.ended) until = Math.min(until, r.endCtx);
  const n = Math.floor((until - r.heardCtx) * RATE);
  const cap = E.mode === 'ws' ? r.scheduled : Infinity;
  return Math.max(0, Math.min(cap, n));
}
function report(r) {
  const nowCtx = ctx.currentTime;
  const played = playedSamples(r, nowCtx);
  if (played === r.lastReport) return;
  r.lastReport = played;
  send({ type: 'playback', response_id: r.rid, played_samples: played, at_ms: performance.now(),
    first_sample_ms: r.heardCtx === null || played === 0 ? null : ctxToPerf(r.heardCtx) + outputLatencyMs(),
    first_received_ms: r.receivedPerf });
}
function clearReply(rid) {
  let r = E.replies[rid];
  const now = ctx.currentTime;
  if (!r) r = E.replies[rid] = newReply(rid, now, performance.now(), 'clear');
  if (r.cleared) return;
  r.cleared = true; r.clearedCtx = now; E.cleared.push({ rid, ctx: now, origin: r.origin });
  for (const s of r.sources) { try { s.stop(now); } catch (e) { /* not started */ } }
  if (E.mode === 'webrtc') agentBus.gain.setValueAtTime(0, now);
  nextFree = Math.min(nextFree, now);
  r.lastReport = -1; report(r);
}
function onResponseStart(msg) {
  // WebRTC: the reply's audio is on the media track; date its first audible sample ourselves.
  agentBus.gain.setValueAtTime(1, ctx.currentTime);
  const r = E.replies[msg.response_id] = newReply(msg.response_id, ctx.currentTime, performance.now(), 'start');
  r.armedCtx = ctx.currentTime;
  for (const other of Object.values(E.replies)) if (other !== r && other.heardCtx !== null && !other.ended) { other.ended = true; other.endCtx = ctx.currentTime; }
}

// ---- uplink (WebSocket) -------------------------------------------------------------------
function onCapture(ev) {
  if (E.mode !== 'ws' || !E.uplinkOn) return;
  const { frame, samples } = ev.data;
  if (pending.length === 0) pendingFrame = frame;
  const merged = new Float32Array(pending.length + samples.length);
  merged.set(pending); merged.set(samples, pending.length); pending = merged;
  while (pending.length >= FRAME) {
    const f = pending.subarray(0, FRAME);
    const buf = new ArrayBuffer(16 + FRAME * 2); const dv = new DataView(buf);
    dv.setUint8(0, 1); dv.setUint32(4, seq++, true);
    dv.setFloat64(8, ctxToPerf(pendingFrame / ctx.sampleRate), true);
    for (let i = 0; i < FRAME; i++) dv.setInt16(16 + 2 * i, Math.max(-32768, Math.min(32767, Math.round(f[i] * 32767))), true);
    if (ws && ws.readyState === 1) ws.send(buf);
    pending = pending.slice(FRAME); pendingFrame += FRAME;
  }
}
function startUplink() { E.uplinkOn = true; }

// ---- call setup --------------------------------------------------------------------------
async function audioGraph() {
  ctx = new AudioContext({ sampleRate: RATE, latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule('/static/worklets.js');
  agentBus = ctx.createGain();
  const tap = new AudioWorkletNode(ctx, 'tap');
  tap.port.onmessage = onTap;
  agentBus.connect(ctx.destination); agentBus.connect(tap);
  const sink = ctx.createGain(); sink.gain.value = 0; tap.connect(sink); sink.connect(ctx.destination);
}
function tokenQuery() { const t = params.get('token'); return t ? `?token=${encodeURIComponent(t)}` : ''; }

async function callWs() {
  mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  const src = ctx.createMediaStreamSource(mic);
  const cap = new AudioWorkletNode(ctx, 'capture'); cap.port.onmessage = onCapture;
  const sink = ctx.createGain(); sink.gain.value = 0;
  src.connect(cap); cap.connect(sink); sink.connect(ctx.destination);
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  ws = new WebSocket(`${proto}://${location.host}/ws${tokenQuery()}`); ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, codec: 'pcm16', frame_ms: 20, client: navigator.userAgent.slice(0, 150) }));
  ws.onmessage = (ev) => { if (typeof ev.data === 'string') onControl(JSON.parse(ev.data)); else onAudio(ev.data); };
  ws.onclose = () => { if (E.state === 'in call' || E.state === 'connecting') hangUp(false); };
}
async function callRtc() {
  mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
  pc = new RTCPeerConnection({ iceServers: [] });
  for (const t of mic.getAudioTracks()) pc.addTrack(t, mic);
  dc = pc.createDataChannel('control');
  dc.onmessage = (ev) => onControl(JSON.parse(ev.data));
  pc.ontrack = (ev) => {
    const stream = ev.streams[0] || new MediaStream([ev.track]);
    const el = new Audio(); el.srcObject = stream; el.muted = true; el.play().catch(() => {});
    E.remoteEl = el;
    ctx.createMediaStreamSource(stream).connect(agentBus);
  };
  pc.onconnectionstatechange = () => { if (['failed', 'closed'].includes(pc.connectionState) && E.state === 'in call') hangUp(false); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((res) => { if (pc.iceGatheringState === 'complete') res(); else pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') res(); }; setTimeout(res, 3000); });
  const resp = await fetch(`/rtc/offer${tokenQuery()}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }) });
  if (!resp.ok) { const text = await resp.text(); E.errors.push({ code: resp.status, message: text }); log('user', `error: ${text}`); hangUp(false); return; }
  const answer = await resp.json(); E.callId = answer.call_id;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
}
async function call() {
  E.mode = $('mode').value; setStatus('connecting');
  $('call').textContent = 'Hang up'; $('call').classList.add('hang');
  try {
    await audioGraph();
    if (E.mode === 'ws') await callWs(); else await callRtc();
    reportTimer = setInterval(() => { for (const r of Object.values(E.replies)) report(r); }, 20);
  } catch (e) { E.errors.push({ code: 'page', message: String(e) }); log('user', `error: ${e}`); hangUp(false); }
}
function hangUp(sendEnd = true) {
  if (sendEnd) { send({ type: 'end' }); }
  E.uplinkOn = false;
  if (mic) for (const t of mic.getTracks()) t.stop();
  $('call').textContent = 'Call'; $('call').classList.remove('hang');
  if (E.state === 'in call' || E.state === 'connecting') setStatus('hung up');
  if (!sendEnd) {
    if (reportTimer) { for (const r of Object.values(E.replies)) report(r); clearInterval(reportTimer); reportTimer = null; }
    if (ws && ws.readyState <= 1) setTimeout(() => ws.close(), 200);
    if (pc) setTimeout(() => pc.close(), 200);
  }
}
E.hangUp = () => hangUp(true);
$('call').onclick = () => { if (E.state === 'in call' || E.state === 'connecting') hangUp(true); else call(); };
if (params.get('mode')) $('mode').value = params.get('mode');
