// The browser camera page, /publish/NAME[?source=camera|screen][&autostart=1][&token=T]
// [&resolution=360p|480p|720p|1080p][&fps=15|24|30][&audio=0|1][&max_viewers=N][&name=NAME]:
// the page publishes NAME from a camera (getUserMedia) or the screen (getDisplayMedia), with
// the microphone's sound unless it is off, as a Python camera would (camera-peer.js). It
// shows the local preview, the sound, the viewers (how each watches, and its figures from
// /api/streams and this browser's own getStats), and the chat, of which this page is the hub.
// Under the server's --talk it plays what the viewer holding the floor says, shows who, and
// its "End the turn" button takes the floor back.

import { CameraPeer, CameraState } from './camera-peer.js';
import { AudioPipeline } from './audio-pipeline.js';
import {
  FRAME_RATES, HEIGHTS, Source, layerOf, listCameras, listMicrophones, openSource,
} from './capture.js';
import { ChatLog, MAX_MESSAGES } from './chat.js';
import { ChatView } from './chat-view.js';
import { loadName, saveName } from './display-name.js';
import { TalkReceiver } from './talk-receiver.js';

/**
 * P2P viewers one browser camera serves by default: each is one more VP8 encoder in this
 * browser. Headless Chromium on a 2-core machine held 30 fps to 8 viewers at 854x480
 * (docs/publish.md, "What it costs"); half that leaves room for a real desktop.
 * ?max_viewers=N sets another cap.
 */
const DEFAULT_MAX_VIEWERS = 4;
const API_POLL_MS = 2000;

const streamName = decodeURIComponent(location.pathname.replace(/^\/publish\//, ''));
const params = new URLSearchParams(location.search);

const video = document.getElementById('video');
const form = document.getElementById('publish-form');
const sourcePick = document.getElementById('source');
const devicePick = document.getElementById('device');
const microphonePick = document.getElementById('microphone');
const heightPick = document.getElementById('resolution-pick');
const fpsPick = document.getElementById('fps-pick');
const tokenInput = document.getElementById('token');
const goLive = document.getElementById('go-live');
const stopButton = document.getElementById('stop');
const status = document.getElementById('status');
const screenMessage = document.getElementById('screen-message');
const rows = document.getElementById('viewer-rows');
const soundState = document.getElementById('sound-state');
const talkState = document.getElementById('talk-state');
const takeFloor = document.getElementById('take-floor');
/** The microphone menu's value for no sound. */
const NO_SOUND = 'off';

let camera = null;
let media = null; // the MediaStream being published
let apiViewers = []; // the viewers /api/streams gives this stream: [{id, name, mode, stats}]
const chatView = new ChatView();
const chatLog = new ChatLog();
let chatName = loadName(location.search) || streamName;
const talkReceiver = new TalkReceiver(document.getElementById('talk-audio'));

function showState(state, text) {
  status.dataset.state = state === CameraState.LIVE ? 'playing' : state;
  status.textContent = text;
  document.body.dataset.state = state;
  screenMessage.textContent = text;
  screenMessage.hidden = state === CameraState.LIVE;
  const running = camera !== null && ![CameraState.STOPPED, CameraState.ERROR].includes(state);
  goLive.disabled = running;
  stopButton.disabled = !running;
  for (const field of [sourcePick, devicePick, microphonePick, heightPick, fpsPick, tokenInput]) {
    field.disabled = running;
  }
  if (!running) releaseMedia();
  showTalk();
  if (state === CameraState.ERROR && /token/.test(text)) tokenInput.focus();
}

async function start() {
  if (camera !== null) stopStream();
  talkReceiver.resume(); // on the click that went live: browsers allow sound after one
  const fps = Number(fpsPick.value);
  let soundError;
  try {
    showState(CameraState.CONNECTING, 'asking for the picture…');
    ({ media, soundError } = await openSource({
      source: sourcePick.value, deviceId: devicePick.value, height: Number(heightPick.value), fps,
      microphone: microphonePick.value === NO_SOUND ? null : microphonePick.value,
    }));
  } catch (error) {
    media = null;
    showState(CameraState.ERROR, `no picture: ${error.message || error.name}`);
    return;
  }
  const [track] = media.getVideoTracks();
  const [microphone] = media.getAudioTracks();
  const audio = microphone ? new AudioPipeline(microphone) : null;
  showSound(audio, soundError);
  // The user ended a screen share from the browser's own bar: stop publishing too.
  track.addEventListener('ended', () => stopStream());
  if (sourcePick.value === Source.SCREEN) track.contentHint = 'detail';
  video.srcObject = media;
  fillDevices();
  camera = new CameraPeer({
    stream: streamName,
    track,
    video,
    audio,
    layer: layerOf(track, fps),
    name: chatName,
    token: tokenInput.value.trim(),
    maxViewers: maxViewersParam(),
    talk: talkReceiver,
    onState: showState,
    onTalk: () => showTalk(),
    onChat: (message) => showChat(message),
    onViewers: () => showViewers(),
  });
  chatLog.clear();
  chatView.clear();
  document.getElementById('published-size').textContent = describeLayer(camera.layer);
  document.getElementById('viewer-cap').textContent = String(camera.maxViewers);
  camera.start();
}

function stopStream() {
  camera?.stop();
  releaseMedia();
}

function releaseMedia() {
  if (media === null) return;
  for (const track of media.getTracks()) track.stop();
  media = null;
  video.srcObject = null;
}

/** The sound row: what is published (Opus, channels, bitrate, which microphone), or why nothing is. */
function showSound(audio, soundError) {
  if (audio === null) {
    soundState.textContent = soundError === null ? 'off' : `none: ${soundError}`;
    if (soundError !== null) console.warn(`peercam: publishing without sound: ${soundError}`);
    return;
  }
  const { channels, bitrate } = audio.info;
  const layout = channels === 1 ? 'mono' : 'stereo';
  soundState.textContent = `Opus ${layout} ${bitrate / 1000} kbit/s (${audio.track.label || 'microphone'})`;
}

/** The talk back row: who talks through this tab, and the button that ends the turn. */
function showTalk() {
  const live = camera?.state === CameraState.LIVE;
  const { open, talking } = camera?.talking ?? { open: false, talking: null };
  if (!live) talkState.textContent = '–';
  else if (!open) talkState.textContent = 'off on this server';
  else if (talking === null) talkState.textContent = 'nobody is talking';
  else talkState.textContent = `${talking} is talking${talkReceiver.running ? '' : ' (click the page to hear it)'}`;
  takeFloor.disabled = !live || talking === null;
}

function describeLayer({ name, width, height, fps }) {
  return `${name} (${width}x${height}@${fps})`;
}

function showChat(message) {
  const index = chatLog.add(message);
  if (index < 0) return;
  chatView.insert(message, index);
  while (chatLog.size > MAX_MESSAGES) {
    chatLog.dropOldest();
    chatView.removeOldest();
  }
}

function sendChat(text) {
  if (!text.trim()) return null;
  if (camera?.state !== CameraState.LIVE) {
    chatView.showNotice('Go live first: this page is the chat hub.');
    return null;
  }
  const refused = camera.say(text);
  if (refused !== null) {
    chatView.showNotice(`Not sent: ${refused}`);
    return null;
  }
  return 'hub';
}

/** The viewer table: the server's view of each viewer (mode, its own report) and this browser's. */
function showViewers() {
  if (camera === null) return;
  const sent = new Map((camera.lastStats?.viewers ?? []).map((report) => [report.id, report]));
  const byId = new Map(apiViewers.map((viewer) => [viewer.id, viewer]));
  const ids = [...new Set([...camera.viewers.keys(), ...byId.keys()])];
  document.getElementById('viewer-count').textContent = `${ids.length} (${
    [...camera.viewers.values()].filter((v) => v.peer?.connected).length} P2P from here)`;
  document.getElementById('fps').textContent = camera.lastStats ? String(camera.lastStats.fps) : '–';
  document.getElementById('relay-state').textContent = camera.relay.describe();
  rows.replaceChildren(...ids.map((id) => {
    const fromApi = byId.get(id);
    const ours = sent.get(id);
    const local = camera.viewers.get(id);
    const row = document.createElement('tr');
    row.dataset.viewer = id;
    const mode = fromApi?.mode ?? (local?.peer?.connected ? 'p2p' : '–');
    const fps = fromApi?.stats?.fps;
    for (const text of [
      fromApi?.name || local?.name || id.slice(0, 8), mode, fps !== undefined ? fps.toFixed(1) : '–',
      ours ? String(ours.frames_sent) : '–', ours?.rtt_ms !== undefined ? `${ours.rtt_ms} ms` : '–',
      ours?.packets_lost !== undefined ? String(ours.packets_lost) : '–',
    ]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

async function pollApi() {
  try {
    if (camera?.state === CameraState.LIVE) {
      const token = tokenInput.value.trim();
      // The list rather than /api/streams/NAME: under --auth all a publish token may not view,
      // and the list leaves its stream out where NAME's own route would refuse it with a 403
      // the console logs on every poll. Left out, the table keeps this browser's own figures.
      const response = await fetch('/api/streams', {
        cache: 'no-store', headers: token ? { Authorization: `Bearer ${token}` } : {},
      });
      const streams = response.ok ? await response.json() : [];
      apiViewers = streams.find((stream) => stream.name === streamName)?.viewers ?? [];
      showViewers();
    }
  } catch {
    apiViewers = [];
  } finally {
    setTimeout(pollApi, API_POLL_MS);
  }
}

async function fillDevices() {
  try {
    const picked = devicePick.value;
    const cameras = await listCameras();
    devicePick.replaceChildren(new Option('default', ''), ...cameras.map(
      ({ deviceId, label }) => new Option(label, deviceId, false, deviceId === picked)));
    const heard = microphonePick.value;
    const microphones = await listMicrophones();
    microphonePick.replaceChildren(
      new Option('off', NO_SOUND, false, heard === NO_SOUND), new Option('default', '', false, heard === ''),
      ...microphones.map(({ deviceId, label }) => new Option(label, deviceId, false, deviceId === heard)));
  } catch {
    // No device list (no permission yet, or no mediaDevices): the default devices it is.
  }
}

/** ?max_viewers=N (N >= 0: 0 sends every viewer to the relay). */
function maxViewersParam() {
  const text = params.get('max_viewers');
  if (text === null) return DEFAULT_MAX_VIEWERS;
  if (/^[0-9]+$/.test(text)) return Number(text);
  console.warn(`peercam: ignoring ?max_viewers=${text}: use a whole number`);
  return DEFAULT_MAX_VIEWERS;
}

/** Picks from the query: ?source=, ?resolution=480p, ?fps=, ?audio=, ?token=. */
function applyQuery() {
  const source = params.get('source');
  if (source !== null) {
    if (Object.values(Source).includes(source)) sourcePick.value = source;
    else console.warn(`peercam: ignoring ?source=${source}: use camera or screen`);
  }
  const height = Number((params.get('resolution') ?? '').replace(/p$/, ''));
  if (params.has('resolution')) {
    if (HEIGHTS.includes(height)) heightPick.value = String(height);
    else console.warn(`peercam: ignoring ?resolution=${params.get('resolution')}: use ${HEIGHTS.join('p, ')}p`);
  }
  const fps = Number(params.get('fps'));
  if (params.has('fps')) {
    if (FRAME_RATES.includes(fps)) fpsPick.value = String(fps);
    else console.warn(`peercam: ignoring ?fps=${params.get('fps')}: use ${FRAME_RATES.join(', ')}`);
  }
  const audio = params.get('audio');
  if (audio === '0') microphonePick.value = NO_SOUND;
  else if (audio !== null && audio !== '1') console.warn(`peercam: ignoring ?audio=${audio}: use 0 (no sound) or 1`);
  tokenInput.value = params.get('token') ?? '';
}

function showSourceFields() {
  document.getElementById('device-field').hidden = sourcePick.value !== Source.CAMERA;
}

document.getElementById('stream-name').textContent = streamName;
document.title = `peercam · go live · ${streamName}`;
document.getElementById('view-link').href = `/view/${encodeURIComponent(streamName)}`;
applyQuery();
showSourceFields();
sourcePick.addEventListener('change', showSourceFields);
form.addEventListener('submit', (event) => {
  event.preventDefault();
  start();
});
stopButton.addEventListener('click', () => stopStream());
takeFloor.addEventListener('click', () => camera?.endTalk());
// Sound waits for the page's first click where the browser asks for one (?autostart=1).
document.addEventListener('pointerdown', () => talkReceiver.resume().then(() => showTalk()));
chatView.showName(chatName);
chatView.onSend(sendChat);
chatView.onName((picked) => {
  chatName = saveName(picked) || streamName;
  chatView.showName(chatName);
});
// Leaving (closing the tab, reloading, navigating) ends the stream now, not when the
// server's heartbeat notices: viewers get stream-ended at once, and a reload publishes again.
window.addEventListener('pagehide', () => stopStream());
fillDevices();
pollApi();
if (params.get('autostart') === '1') start();

// For tests and the curious: window.peercam.state() (a CameraState), .viewers() ({id: {name,
// p2p, sound}}), .stats() (the last camera-stats report), .relay() (what the relay asks for),
// .sound() (the published sound's AudioInfo, or null), .chat() ([{id, name, text}]),
// .sendChat(text) ('hub', or null with a notice), .talk() ({open, talking (a name or null),
// since, playing (the tab may make sound), relayPackets (talk frames played), latencyMs (the
// test tone's mouth to speaker, {p50, p95}, or null)}) and .talkBeeps() (the test tone's
// beeps the tab played: [{captureTimeMs, heardTimeMs, latencyMs}], the latest ten).
window.peercam = {
  state: () => camera?.state ?? CameraState.STOPPED,
  viewers: () => Object.fromEntries([...(camera?.viewers ?? new Map())].map(
    ([id, { name, peer }]) => [id, { name, p2p: peer?.connected ?? false, sound: peer?.sendsSound ?? false }])),
  stats: () => camera?.lastStats ?? null,
  relay: () => camera?.relay.describe() ?? 'off',
  sound: () => camera?.audio?.info ?? null,
  chat: () => chatLog.messages.map(({ id, name, text }) => ({ id, name, text })),
  sendChat: (text) => sendChat(text),
  talk: () => ({
    ...(camera?.talking ?? { open: false, talking: null, since: null }),
    playing: talkReceiver.running,
    relayPackets: talkReceiver.relayPackets,
    latencyMs: talkReceiver.latencyMs,
  }),
  talkBeeps: () => talkReceiver.beeps(),
};
