// The customer at home (/join/<token>, signaling/remote_customer.py): device and network
// check, the identity step, the waiting room, and the call with documents and chat.
//
// The call itself is the kiosk's: CallMedia (one peer connection to the relay, rejoins after
// failures) and the document panel with the chat, end-to-end encrypted (shared modules). The
// socket authenticates with this browser's HttpOnly session cookie (`auth: {guest: true}`),
// which entering the waiting room set; nothing here can read it.
//
// Tests read `window.__join`: {phase, checks: {camera, microphone, speaker, relay, turn},
// relayPair: {local, remote} candidate types of the device check's connection}.

import {
  LANGUAGES, addStrings, applyTranslations, language, mountLanguageSwitcher, onLanguageChange,
  rememberedLanguage, setLanguage, t,
} from "/static/common/js/i18n.js";
import { connect, request } from "/static/console/js/session.js";
import { CallMedia } from "/static/console/js/call-media.js";
import { mountDocumentPanel } from "/static/console/js/documents.js";
import { runRelayProbe } from "/static/common/js/relay-probe.js";
import { JOIN_STRINGS } from "./strings.js";

addStrings(JOIN_STRINGS);

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/join/${encodeURIComponent(token)}`;
const debug = (window.__join = { phase: "loading", checks: {}, relayPair: null });

const state = {
  info: null, // GET state: {phase, appointment, identity, ice_servers, call}
  stream: null,
  audioContext: null,
  meterTimer: null,
  socket: null,
  media: null,
  call: null,
  panel: null,
  expertTracks: {}, // source -> track
};

// --- language ---------------------------------------------------------------------------------

function startLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (LANGUAGES.includes(asked)) return asked;
  const remembered = rememberedLanguage();
  if (remembered) return remembered;
  for (const tag of navigator.languages || []) {
    const code = tag.slice(0, 2).toLowerCase();
    if (LANGUAGES.includes(code)) return code;
  }
  return "fi";
}

// --- views ------------------------------------------------------------------------------------

function show(phase) {
  debug.phase = phase;
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${phase}`;
  $("appointment").hidden = !state.info || phase === "ended";
}

/** A text that follows the language switch (applyTranslations reads data-i18n). */
function setText(element, key) {
  element.dataset.i18n = key;
  element.textContent = t(key);
}

function status(text, kind = "") {
  const el = $("status");
  el.textContent = text || "";
  el.className = `banner ${kind}`;
  el.hidden = !text;
}

function renderAppointment() {
  const info = state.info && state.info.appointment;
  if (!info) return;
  const authority = info.authority[language()] || info.authority.fi || info.authority.code;
  $("appointment-with").textContent = info.expert_name
    ? t("join.with", { name: info.expert_name })
    : t("join.withAuthority", { authority });
  const locale = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" }[language()];
  const when = new Date(info.starts_at).toLocaleString(locale, {
    weekday: "long", day: "numeric", month: "numeric", year: "numeric", hour: "2-digit",
    minute: "2-digit", timeZone: "Europe/Helsinki",
  });
  $("appointment-when").textContent = t("join.when", { when });
  $("appointment-when").dataset.startsAt = info.starts_at;
}

async function getJson(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

function postJson(path, payload = {}) {
  return getJson(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(payload),
  });
}

// --- the device and network check ---------------------------------------------------------------

function setCheck(name, stateName, words) {
  debug.checks[name] = stateName;
  const item = document.querySelector(`.checks li[data-check="${name}"]`);
  item.dataset.state = stateName;
  const result = item.querySelector(".result");
  result.dataset.i18n = words;
  result.textContent = t(words);
}

function stopStream() {
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
}

async function openDevices() {
  if (state.stream && state.stream.getTracks().every((track) => track.readyState === "live")) {
    return state.stream;
  }
  stopStream();
  state.stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true },
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
  });
  return state.stream;
}

function watchMicrophone(stream) {
  const track = stream.getAudioTracks()[0];
  if (!track) {
    setCheck("microphone", "failed", "join.check.failed");
    return;
  }
  setCheck("microphone", "pending", "join.check.pending");
  try {
    state.audioContext = state.audioContext || new AudioContext();
    const source = state.audioContext.createMediaStreamSource(new MediaStream([track]));
    const analyser = state.audioContext.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const started = Date.now();
    clearInterval(state.meterTimer);
    state.meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const value of samples) sum += value * value;
      const level = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      $("mic-level").value = level;
      if (level > 0.02 && debug.checks.microphone !== "ok") {
        setCheck("microphone", "ok", "join.check.ok");
      } else if (debug.checks.microphone === "pending" && Date.now() - started > 6000) {
        setCheck("microphone", "silent", "join.check.silent");
      }
    }, 100);
  } catch (error) {
    console.warn("microphone level not measured", error);
    setCheck("microphone", track.readyState === "live" ? "ok" : "failed",
             track.readyState === "live" ? "join.check.ok" : "join.check.failed");
  }
}

function playTestSound() {
  state.audioContext = state.audioContext || new AudioContext();
  const context = state.audioContext;
  context.resume().catch(() => {});
  const oscillator = context.createOscillator();
  const gain = context.createGain();
  oscillator.frequency.value = 660;
  gain.gain.setValueAtTime(0.0001, context.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.3, context.currentTime + 0.05);
  gain.gain.exponentialRampToValueAtTime(0.0001, context.currentTime + 0.9);
  oscillator.connect(gain).connect(context.destination);
  oscillator.start();
  oscillator.stop(context.currentTime + 1);
  debug.testSoundPlayed = true;
  $("heard-yes").hidden = false;
  $("heard-no").hidden = false;
}

/** A short connection to the relay with the ICE servers the service hands out: it must
 * reach "connected" over a candidate pair that succeeded (/static/common/js/relay-probe.js). */
async function probeRelay(iceServers) {
  try {
    const { pair } = await runRelayProbe({
      open: async () => {
        const opened = await postJson(`${base}/probe`);
        if (opened.status !== 200) throw Object.assign(new Error("probe refused"), { code: "relay_down" });
        return opened.body;
      },
      answer: async (probeId, sdp) => {
        const answered = await postJson(`${base}/probe/${probeId}/answer`, { sdp });
        if (answered.status !== 200) throw new Error("answer refused");
      },
      close: (probeId) => postJson(`${base}/probe/${probeId}/close`),
      iceServers,
      connectMs: 8000,
    });
    if (!pair) return false;
    debug.relayPair = pair;
    return true;
  } catch (error) {
    console.warn("relay check failed", error);
    return false;
  }
}

/** TURN, when the service hands out TURN servers: a relay candidate must be gathered. */
async function probeTurn(iceServers) {
  const turn = iceServers.filter((server) => [].concat(server.urls || [])
    .some((url) => /^turns?:/.test(url)));
  if (!turn.length) return "skipped";
  const pc = new RTCPeerConnection({ iceServers: turn, iceTransportPolicy: "relay" });
  try {
    pc.createDataChannel("check");
    const found = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 6000);
      pc.addEventListener("icecandidate", (event) => {
        if (event.candidate && / typ relay /.test(event.candidate.candidate)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    return (await found) ? "ok" : "failed";
  } finally {
    pc.close();
  }
}

async function runChecks() {
  $("check-advice").hidden = true;
  for (const name of ["camera", "microphone", "relay", "turn"]) setCheck(name, "pending", "join.check.pending");
  if (!debug.checks.speaker || debug.checks.speaker === "pending") {
    setCheck("speaker", "pending", "join.check.notTested");
  }
  const advice = [];
  try {
    const stream = await openDevices();
    $("check-video").srcObject = stream;
    const video = stream.getVideoTracks()[0];
    setCheck("camera", video && video.readyState === "live" ? "ok" : "failed",
             video && video.readyState === "live" ? "join.check.ok" : "join.check.failed");
    watchMicrophone(stream);
  } catch (error) {
    const blocked = error && error.name === "NotAllowedError";
    setCheck("camera", "failed", blocked ? "join.check.blocked" : "join.check.failed");
    setCheck("microphone", "failed", blocked ? "join.check.blocked" : "join.check.failed");
    advice.push("join.advice.camera");
  }
  const iceServers = state.info.ice_servers || [];
  const [relayOk, turn] = await Promise.all([probeRelay(iceServers), probeTurn(iceServers)]);
  setCheck("relay", relayOk ? "ok" : "failed", relayOk ? "join.check.ok" : "join.check.failed");
  if (!relayOk) advice.push("join.advice.relay");
  setCheck("turn", turn, { ok: "join.check.ok", failed: "join.check.failed",
                            skipped: "join.check.notConfigured" }[turn]);
  if (advice.length) {
    $("check-advice").textContent = advice.map((key) => t(key)).join(" ");
    $("check-advice").hidden = false;
  }
  debug.checksDone = true;
}

async function enterWaitingRoom() {
  $("continue").disabled = true;
  try {
    const answer = await postJson(`${base}/enter`);
    if (answer.status === 410) {
      location.reload(); // the server's page says why
      return;
    }
    if (answer.status !== 200) {
      status(t("join.enterFailed"), "error");
      return;
    }
    status("");
    startWaiting();
  } finally {
    $("continue").disabled = false;
  }
}

// --- waiting room and call --------------------------------------------------------------------

function startWaiting() {
  show("waiting");
  if (state.stream) $("waiting-video").srcObject = state.stream;
  if (state.socket) return;
  const socket = connect({ guest: true });
  state.socket = socket;
  socket.on("connect", () => {
    setText($("waiting-connection"), "join.waiting.connected");
    request(socket, "remote:state", {}).then(applyState).catch((error) => {
      console.warn("remote:state", error);
    });
  });
  socket.on("disconnect", () => {
    setText($("waiting-connection"), "join.waiting.reconnecting");
  });
  socket.on("connect_error", (error) => {
    if (error && error.data && error.data.code === "unauthenticated") {
      socket.disconnect();
      location.reload(); // the session ended: the server's page says why
    }
  });
  socket.on("remote:admitted", ({ call }) => enterCall(call));
  socket.on("call:ended", ({ call_id: callId }) => {
    if (state.call && state.call.id === callId) endCall();
  });
}

function applyState(info) {
  if (info.phase === "call" && info.call) {
    if (state.media && state.call && state.call.id === info.call.id) {
      state.media.rejoin("reconnect");
    } else {
      enterCall(info.call);
    }
  } else if (info.phase === "ended") {
    endCall();
  } else if (!state.call) {
    show("waiting");
  }
}

function showExpertVideo() {
  const track = state.expertTracks.screen || state.expertTracks.camera || null;
  const video = $("expert-video");
  video.srcObject = track ? new MediaStream([track]) : null;
}

const audioElements = new Map();

function onTrack(info) {
  if (info.kind === "audio") {
    let element = audioElements.get(info.mid);
    if (!element) {
      element = document.createElement("audio");
      element.autoplay = true;
      document.body.append(element);
      audioElements.set(info.mid, element);
    }
    element.srcObject = new MediaStream([info.track]);
    return;
  }
  const who = (state.call && state.call.participants || []).find((p) => p.participant_id === info.participantId);
  if (who && who.role !== "expert" && who.role !== "interpreter") return;
  if (info.source === "screen" || info.source === "camera") {
    state.expertTracks[info.source] = info.track;
    showExpertVideo();
  }
}

function onTrackRemoved(info) {
  for (const [source, track] of Object.entries(state.expertTracks)) {
    if (track === info.track) delete state.expertTracks[source];
  }
  showExpertVideo();
  const audio = audioElements.get(info.mid);
  if (audio && audio.srcObject && audio.srcObject.getTracks().includes(info.track)) {
    audio.remove();
    audioElements.delete(info.mid);
  }
}

function renderExpertLabel() {
  const expert = (state.call && state.call.participants || []).find((p) => p.role === "expert");
  $("expert-label").textContent = expert ? expert.name : t("join.call.expert");
}

async function enterCall(call) {
  if (state.call && state.call.id === call.id && state.media) return;
  state.call = call;
  show("call");
  renderExpertLabel();
  setText($("call-state"), "join.call.connecting");
  try {
    await openDevices();
  } catch (error) {
    console.warn("no camera", error);
  }
  $("self-video").srcObject = state.stream;
  state.media = new CallMedia(state.socket, state.stream, {
    callbacks: {
      onTrack,
      onTrackRemoved,
      onJoined: ({ participantId }) => {
        debug.participantId = participantId;
        if (!state.panel) {
          state.panel = mountDocumentPanel($("document-panel-mount"), {
            socket: state.socket, call: state.call, participantId, role: "customer",
            atKiosk: false,
          });
        }
      },
      onState: (mediaState) => {
        const key = { connected: "join.call.connected", reconnecting: "join.call.reconnecting" }[mediaState]
          || "join.call.connecting";
        setText($("call-state"), key);
      },
      onJoinRefused: () => request(state.socket, "remote:state", {}).then(applyState).catch(() => {}),
    },
  });
  try {
    await state.media.join(call.id);
  } catch (error) {
    console.error("call:join failed", error);
    if (error.code === "conflict") endCall();
  }
}

function endCall() {
  if (state.media) state.media.close();
  state.media = null;
  if (state.panel) state.panel.destroy();
  state.panel = null;
  for (const element of audioElements.values()) element.remove();
  audioElements.clear();
  state.expertTracks = {};
  state.call = null;
  clearInterval(state.meterTimer);
  stopStream();
  if (state.socket) state.socket.disconnect();
  show("ended");
}

async function leave() {
  const call = state.call;
  if (call && state.socket) {
    await request(state.socket, "call:leave", { call_id: call.id }).catch(() => {});
  }
  endCall();
}

function toggleTrack(kind, button) {
  if (!state.stream) return;
  const tracks = kind === "audio" ? state.stream.getAudioTracks() : state.stream.getVideoTracks();
  const off = button.getAttribute("aria-pressed") !== "true";
  for (const track of tracks) track.enabled = !off;
  button.setAttribute("aria-pressed", String(off));
}

// --- start ------------------------------------------------------------------------------------

async function start() {
  setLanguage(startLanguage(), { remember: false });
  mountLanguageSwitcher($("language-switcher"), { remember: false });
  applyTranslations(document);
  onLanguageChange(() => {
    renderAppointment();
    renderExpertLabel();
  });
  $("play-sound").addEventListener("click", playTestSound);
  $("heard-yes").addEventListener("click", () => setCheck("speaker", "ok", "join.check.ok"));
  $("heard-no").addEventListener("click", () => setCheck("speaker", "failed", "join.check.failed"));
  $("check-again").addEventListener("click", () => runChecks());
  $("continue").addEventListener("click", enterWaitingRoom);
  $("leave").addEventListener("click", leave);
  $("toggle-mic").addEventListener("click", (event) => toggleTrack("audio", event.currentTarget));
  $("toggle-camera").addEventListener("click", (event) => toggleTrack("video", event.currentTarget));
  const answer = await getJson(`${base}/state`);
  if (answer.status === 410) {
    location.reload();
    return;
  }
  if (answer.status !== 200 || !answer.body) {
    status(t("join.enterFailed"), "error");
    return;
  }
  state.info = answer.body;
  renderAppointment();
  if (new URLSearchParams(location.search).get("identity_error")) {
    status(t("join.identity.failed"), "error");
  }
  if (state.info.phase === "check") {
    if (state.info.identity !== "none") {
      $("continue").hidden = true;
      $("identify").hidden = false;
      $("identify").href = `${base}/identity`;
      $("identity-note").hidden = false;
    }
    show("check");
    await runChecks();
  } else if (state.info.phase === "ended") {
    show("ended");
  } else {
    // Entered before (a reload in the same browser): straight back to where he was.
    try {
      await openDevices();
    } catch (error) {
      console.warn("no camera", error);
    }
    startWaiting();
  }
}

start();
