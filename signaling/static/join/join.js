// The customer at home (/join/<token>, signaling/flow/remote_customer.py): device and network
// check, the identity step, the waiting room, and the call with documents and chat.
//
// The call itself is the kiosk's: CallMedia (one peer connection to the relay, rejoins after
// failures) and the document panel with the chat, end-to-end encrypted (shared modules). The
// socket authenticates with this browser's HttpOnly session cookie (`auth: {guest: true}`),
// which entering the waiting room set; nothing here can read it.
//
// The seat (remote_customer.py "The seat"): once let into the call, this tab keeps the seat the
// server hands out in its sessionStorage and shows it with every `remote:state` (after each
// socket (re)connect, when let in, when a rejoin is refused). A reload or a reconnect of this
// tab goes on in the call (CallMedia rejoins); the link opened in another tab, or again after
// leaving, finds no seat and brings the customer back to the waiting room, where the expert
// sees him waiting again. Media that stays down for GIVE_UP_MS while the socket works gives the
// seat up (`remote:return`): back to the waiting room as well.
//
// Tests read `window.__join`: {phase, checks: {camera, microphone, speaker, relay, turn},
// relayPair: {local, remote} candidate types of the device check's connection,
// relayError: why the relay check failed (its error code), turn: {state, reason, url, ms} of
// the TURN allocation check, checksDone, checkRuns}.
// Also there: `socket`, and `returning` / `elsewhere` of the last `remote:state`, and
// `report`: the check's result as sent to the expert (`remote:check`), once acknowledged.
//
// The check runs before he has a session (entering the waiting room, or the identity step's
// redirect, makes it), so its result is kept in this tab's sessionStorage when he goes on and
// sent with `remote:check` once the waiting room's socket is up; the expert's list shows it.

import {
  LANGUAGES, addStrings, applyTranslations, language, mountLanguageSwitcher, onLanguageChange,
  rememberedLanguage, setLanguage, t,
} from "/static/common/js/i18n.js";
import { connect, request } from "/static/console/js/session.js";
import { CallMedia } from "/static/console/js/call-media.js";
import { mountDocumentPanel } from "/static/console/js/documents.js";
import { runRelayProbe, runTurnProbe } from "/static/common/js/relay-probe.js";
import { JOIN_STRINGS } from "./strings.js";

addStrings(JOIN_STRINGS);

const $ = (id) => document.getElementById(id);
const token = decodeURIComponent(location.pathname.split("/")[2] || "");
const base = `/join/${encodeURIComponent(token)}`;
const debug = (window.__join = { phase: "loading", checks: {}, relayPair: null, turn: null, checkRuns: 0 });

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
  giveUpTimer: null, // runs while the call's media is down and the socket up
  elsewhereTimer: null, // asks again while another tab of his is in the call
  advice: [], // i18n keys of the last device check's advice
  blocked: false, // the browser refused the camera and microphone in the last check
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
    if (!pair) {
      debug.relayError = "no_pair";
      return false;
    }
    debug.relayError = null;
    debug.relayPair = pair;
    return true;
  } catch (error) {
    console.warn("relay check failed", error);
    debug.relayError = (error && (error.code || error.message)) || "failed";
    return false;
  }
}

/** TURN, when the service hands out TURN servers: a relayed address must be allocated through
 * them with the short-lived credentials the service minted (/static/common/js/relay-probe.js).
 * The result's words say what failed: credentials refused (the service's fault) or the server
 * not reached (coturn down, or this network blocks it). */
async function probeTurn(iceServers) {
  try {
    return await runTurnProbe({ iceServers, waitMs: 5000 });
  } catch (error) {
    console.warn("TURN check failed", error);
    return { state: "failed", reason: "error", url: null };
  }
}

const TURN_WORDS = {
  ok: "join.check.ok",
  skipped: "join.check.notConfigured",
  refused: "join.check.turnRefused",
  unreachable: "join.check.turnUnreachable",
  error: "join.check.failed",
};

/** Fresh ICE servers for a repeated check: TURN credentials live `turn_credential_ttl` only. */
async function refreshIceServers() {
  const answer = await getJson(`${base}/state`);
  if (answer.status === 200 && answer.body) state.info.ice_servers = answer.body.ice_servers;
}

async function runChecks() {
  debug.checksDone = false;
  debug.checkRuns += 1;
  state.advice = [];
  renderAdvice();
  for (const name of ["camera", "microphone", "relay", "turn"]) setCheck(name, "pending", "join.check.pending");
  if (!debug.checks.speaker || debug.checks.speaker === "pending") {
    setCheck("speaker", "pending", "join.check.notTested");
  }
  const advice = [];
  state.blocked = false;
  try {
    const stream = await openDevices();
    $("check-video").srcObject = stream;
    const video = stream.getVideoTracks()[0];
    setCheck("camera", video && video.readyState === "live" ? "ok" : "failed",
             video && video.readyState === "live" ? "join.check.ok" : "join.check.failed");
    watchMicrophone(stream);
  } catch (error) {
    const blocked = error && error.name === "NotAllowedError";
    state.blocked = Boolean(blocked);
    setCheck("camera", "failed", blocked ? "join.check.blocked" : "join.check.failed");
    setCheck("microphone", "failed", blocked ? "join.check.blocked" : "join.check.failed");
    advice.push("join.advice.camera");
  }
  const iceServers = state.info.ice_servers || [];
  const [relayOk, turn] = await Promise.all([probeRelay(iceServers), probeTurn(iceServers)]);
  setCheck("relay", relayOk ? "ok" : "failed", relayOk ? "join.check.ok" : "join.check.failed");
  if (!relayOk) advice.push("join.advice.relay");
  debug.turn = turn;
  setCheck("turn", turn.state, TURN_WORDS[turn.state === "failed" ? turn.reason : turn.state]);
  // A failed TURN check does not stop anyone (nothing here does): the call takes the path the
  // relay check just proved. TURN is the fallback for networks where that path is closed, so
  // with the direct path working the customer is told he can go on; without it, what to try.
  if (turn.state === "failed" && relayOk) advice.push("join.advice.turnDirectOk");
  state.advice = advice;
  renderAdvice();
  debug.checksDone = true;
}

// --- the check's result for the expert (remote:check) ------------------------------------------

const REPORT_KEY = "etapalvelu.join.check";

/** The last check as the fixed codes the server accepts (remote_customer.py JoinCheckPayload). */
function checkReport() {
  const checks = debug.checks;
  const relayReason = ["no_pair", "relay_down"].includes(debug.relayError) ? debug.relayError : "error";
  const turn = debug.turn || { state: "failed", reason: "error" };
  const turnState = ["ok", "skipped"].includes(turn.state) ? turn.state : "failed";
  return {
    camera: state.blocked ? "blocked" : checks.camera === "ok" ? "ok" : "failed",
    microphone: state.blocked ? "blocked"
      : ["ok", "silent", "pending"].includes(checks.microphone) ? checks.microphone : "failed",
    speaker: checks.speaker === "ok" || checks.speaker === "failed" ? checks.speaker : "not_tested",
    relay: checks.relay === "ok" ? "ok" : "failed",
    relay_reason: checks.relay === "ok" ? null : relayReason,
    turn: turnState,
    turn_reason: turnState === "failed"
      ? (["refused", "unreachable"].includes(turn.reason) ? turn.reason : "error") : null,
  };
}

/** Kept when he goes on from the check (also across the identity provider's redirect). */
function keepReport() {
  if (!debug.checksDone) return;
  try {
    sessionStorage.setItem(REPORT_KEY, JSON.stringify(checkReport()));
  } catch (error) {
    console.warn("check result not kept", error);
  }
}

/** Sent once the waiting room's socket is up; forgotten when the server has it. */
async function sendReport() {
  let report = null;
  try {
    report = JSON.parse(sessionStorage.getItem(REPORT_KEY) || "null");
  } catch {
    report = null;
  }
  if (!report || !state.socket) return;
  try {
    await request(state.socket, "remote:check", report);
    debug.report = report;
    sessionStorage.removeItem(REPORT_KEY);
  } catch (error) {
    console.warn("remote:check", error);
    if (error && error.code === "invalid") sessionStorage.removeItem(REPORT_KEY);
  }
}

/** The advice of the last check, in the current language (it follows the language switch). */
function renderAdvice() {
  const advice = state.advice || [];
  $("check-advice").textContent = advice.map((key) => t(key)).join(" ");
  $("check-advice").hidden = !advice.length;
}

async function enterWaitingRoom() {
  $("continue").disabled = true;
  keepReport();
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
  debug.socket = socket;
  socket.on("connect", sync);
  socket.on("connect", sendReport);
  socket.on("disconnect", () => {
    setText($("waiting-connection"), "join.waiting.reconnecting");
    stopGiveUp(); // the reconnect's remote:state decides
  });
  socket.on("connect_error", (error) => {
    if (error && error.data && error.data.code === "unauthenticated") {
      socket.disconnect();
      location.reload(); // the session ended: the server's page says why
    }
  });
  socket.on("remote:admitted", sync); // remote:state hands this tab the seat
  socket.on("call:ended", ({ call_id: callId }) => {
    if (state.call && state.call.id === callId) endCall();
    else sync(); // waiting to be let back into it
  });
}

// --- the seat -----------------------------------------------------------------------------------

const SEAT_KEY = "etapalvelu.join.seat";
const GIVE_UP_MS = 20000;
const ELSEWHERE_POLL_MS = 5000;

function savedSeat() {
  try {
    return sessionStorage.getItem(SEAT_KEY) || null;
  } catch {
    return null;
  }
}

function keepSeat(seat) {
  try {
    if (seat) sessionStorage.setItem(SEAT_KEY, seat);
    else sessionStorage.removeItem(SEAT_KEY);
  } catch {
    /* storage blocked: a reload then goes through the waiting room */
  }
}

/** Where this tab stands: `remote:state` with its seat. */
function sync() {
  const socket = state.socket;
  if (!socket || !socket.connected) return Promise.resolve();
  const seat = savedSeat();
  return request(socket, "remote:state", seat ? { seat } : {}).then(applyState).catch((error) => {
    console.warn("remote:state", error);
  });
}

function applyState(info) {
  clearTimeout(state.elsewhereTimer);
  debug.returning = Boolean(info.returning);
  debug.elsewhere = Boolean(info.elsewhere);
  if (info.phase === "call" && info.call) {
    keepSeat(info.seat);
    if (state.media && state.call && state.call.id === info.call.id) {
      state.media.rejoin("reconnect");
    } else {
      enterCall(info.call);
    }
  } else if (info.phase === "ended") {
    keepSeat(null);
    endCall();
  } else {
    keepSeat(null);
    closeCall(); // sent back to the waiting room (or never let in)
    show("waiting");
    if (state.stream) $("waiting-video").srcObject = state.stream;
    const words = info.elsewhere ? "join.waiting.elsewhere"
      : info.returning ? "join.waiting.again" : "join.waiting.connected";
    setText($("waiting-connection"), words);
    if (info.elsewhere) state.elsewhereTimer = setTimeout(sync, ELSEWHERE_POLL_MS);
  }
}

/** The call's media is down while the socket works: after GIVE_UP_MS, back to the waiting room. */
function watchMedia(mediaState) {
  if (mediaState !== "reconnecting" || !state.socket || !state.socket.connected) {
    stopGiveUp();
  } else if (!state.giveUpTimer) {
    state.giveUpTimer = setTimeout(giveUp, GIVE_UP_MS);
  }
}

function stopGiveUp() {
  clearTimeout(state.giveUpTimer);
  state.giveUpTimer = null;
}

async function giveUp() {
  state.giveUpTimer = null;
  if (!state.call || !state.socket || !state.socket.connected) return;
  const seat = savedSeat();
  keepSeat(null);
  closeCall();
  await request(state.socket, "remote:return", seat ? { seat } : {}).catch((error) => {
    console.warn("remote:return", error);
  });
  await sync();
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
        watchMedia(mediaState);
      },
      onJoinRefused: sync,
    },
  });
  try {
    await state.media.join(call.id);
  } catch (error) {
    console.error("call:join failed", error);
    if (error.code === "conflict") {
      closeCall(); // ended, or back in the waiting room: the server says which
      sync();
    }
  }
}

/** Out of the call (media, documents, its sounds); the camera and the socket stay. */
function closeCall() {
  stopGiveUp();
  if (state.media) state.media.close();
  state.media = null;
  if (state.panel) state.panel.destroy();
  state.panel = null;
  for (const element of audioElements.values()) element.remove();
  audioElements.clear();
  state.expertTracks = {};
  state.call = null;
}

/** The end: the call ended, or he left it (`left`: the page offers the way back). */
function endCall({ left = false } = {}) {
  closeCall();
  clearTimeout(state.elsewhereTimer);
  clearInterval(state.meterTimer);
  stopStream();
  if (state.socket) state.socket.disconnect();
  setText($("ended-title"), left ? "join.left.title" : "join.ended.title");
  setText($("ended-text"), left ? "join.left.text" : "join.ended.text");
  $("back-to-waiting").hidden = !left;
  show("ended");
}

async function leave() {
  const call = state.call;
  keepSeat(null); // the link opened again leads to the waiting room
  if (call && state.socket) {
    await request(state.socket, "call:leave", { call_id: call.id }).catch(() => {});
  }
  endCall({ left: true });
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
    renderAdvice();
  });
  $("play-sound").addEventListener("click", playTestSound);
  $("heard-yes").addEventListener("click", () => setCheck("speaker", "ok", "join.check.ok"));
  $("heard-no").addEventListener("click", () => setCheck("speaker", "failed", "join.check.failed"));
  $("check-again").addEventListener("click", async () => {
    await refreshIceServers().catch((error) => console.warn("ICE servers not refreshed", error));
    await runChecks();
  });
  $("continue").addEventListener("click", enterWaitingRoom);
  $("leave").addEventListener("click", leave);
  $("back-to-waiting").addEventListener("click", () => location.reload());
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
      $("identify").addEventListener("click", keepReport);
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
