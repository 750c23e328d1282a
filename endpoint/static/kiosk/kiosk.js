// The kiosk customer UI: authority → language of service → ticket → call → thanks.
// Events: docs/signaling-events.md. State lives on the server; after every (re)connect
// `flow:sync` tells the kiosk whether it has a waiting ticket or a running call, so a reload
// lands on the same screen and rejoins the same call.

import {
  addStrings, applyTranslations, language, languageName, localName, mountLanguageSwitcher,
  onLanguageChange, setLanguage, t, waitText, formatDateTime,
} from "/static/common/js/i18n.js";
import { connect, request } from "/static/console/js/session.js";
import { CallMedia, openCamera } from "/static/console/js/call-media.js";
import { mountDocumentPanel } from "/static/console/js/documents.js";
import { participantListElement, renderParticipantList } from "/static/common/js/participant-list.js";
import { KIOSK_STRINGS } from "./strings.js";

addStrings(KIOSK_STRINGS);

const CREDENTIAL_KEY = "etapalvelu.kiosk";
const SERVICE_LANGUAGES = { fi: ["fin", "swe", "eng"], sv: ["swe", "fin", "eng"],
                            en: ["eng", "fin", "swe"] };
// The thank-you screen stays long enough to read slowly before going back to the start.
const ENDED_SCREEN_SECONDS = 45;
const UI_LANGUAGE_OF = { fin: "fi", swe: "sv", eng: "en" };

const state = {
  socket: null,
  officeName: "",
  defaultLanguage: null,
  authorities: [],
  chosenAuthority: null,
  ticket: null,
  call: null,
  participants: [],
  media: null,
  camera: null,
  endedTimer: null,
  documentPanel: null,
};
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.kiosk = state;

const $ = (id) => document.getElementById(id);

// ---- credential -------------------------------------------------------------------------

/** `#endpoint=ID&credential=SECRET` once, then localStorage; the fragment is wiped so the
 * secret does not linger in the address bar or history. */
function loadCredential() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("endpoint") && params.get("credential")) {
    const saved = { endpoint_id: Number(params.get("endpoint")),
                    credential: params.get("credential") };
    localStorage.setItem(CREDENTIAL_KEY, JSON.stringify(saved));
    history.replaceState(null, "", location.pathname + location.search);
    return saved;
  }
  try {
    return JSON.parse(localStorage.getItem(CREDENTIAL_KEY) || "null");
  } catch {
    return null;
  }
}

// ---- screens ----------------------------------------------------------------------------

function show(name) {
  for (const section of document.querySelectorAll(".screen")) {
    section.hidden = section.id !== `screen-${name}`;
  }
  document.body.dataset.screen = name;
  // Move focus to the new heading so a screen reader announces where we are.
  const heading = document.querySelector(`#screen-${name} h1`);
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function setStatus(text, kind = "warn") {
  const el = $("status");
  el.textContent = text || "";
  el.className = `banner ${kind}`;
  el.hidden = !text;
}

function renderAuthorities() {
  const list = $("authority-list");
  list.replaceChildren();
  if (!state.authorities.length) {
    const p = document.createElement("p");
    p.className = "lead";
    p.textContent = t("kiosk.start.noAuthorities");
    list.append(p);
    return;
  }
  for (const authority of state.authorities) {
    const item = document.createElement("div");
    item.setAttribute("role", "listitem");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.authority = authority.code;
    button.textContent = localName(authority);
    button.addEventListener("click", () => chooseAuthority(authority));
    item.append(button);
    list.append(item);
  }
}

function chooseAuthority(authority) {
  state.chosenAuthority = authority;
  renderServiceLanguages();
  show("language");
}

function renderServiceLanguages() {
  $("language-authority").textContent = localName(state.chosenAuthority);
  const list = $("service-language-list");
  list.replaceChildren();
  for (const code of SERVICE_LANGUAGES[language()]) {
    const item = document.createElement("div");
    item.setAttribute("role", "listitem");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.language = code;
    // The language's own name first, so a customer finds it whatever the screen language.
    const own = document.createElement("span");
    own.textContent = { fin: "Suomi", swe: "Svenska", eng: "English" }[code];
    own.lang = UI_LANGUAGE_OF[code];
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = languageName(code);
    button.append(own);
    if (sub.textContent.toLowerCase() !== own.textContent.toLowerCase()) button.append(sub);
    button.addEventListener("click", () => takeTicket(code));
    item.append(button);
    list.append(item);
  }
}

function renderTicket() {
  const ticket = state.ticket;
  if (!ticket) return;
  const authority = state.authorities.find((a) => a.id === ticket.authority_id);
  $("ticket-authority").textContent = authority ? localName(authority) : ticket.authority_code;
  $("ticket-number").textContent = ticket.number;
  const appointment = $("ticket-appointment");
  appointment.hidden = !ticket.booked_at;
  if (ticket.booked_at) {
    appointment.textContent = t("kiosk.appointment.at", { time: formatDateTime(ticket.booked_at) });
  }
  const ahead = ticket.position == null ? null : ticket.position - 1;
  let position = "";
  if (ticket.status === "serving") position = t("kiosk.ticket.calling");
  else if (ahead === 0) position = t("kiosk.ticket.next");
  else if (ahead === 1) position = t("kiosk.ticket.positionOne");
  else if (ahead != null) position = t("kiosk.ticket.position", { n: ahead });
  $("ticket-position").textContent = position;
  $("ticket-wait").textContent =
    ticket.status === "waiting" && ticket.estimated_wait_seconds != null
      ? t("kiosk.ticket.wait", { wait: waitText(ticket.estimated_wait_seconds) })
      : "";
}

// ---- queue --------------------------------------------------------------------------------

async function takeTicket(languageCode) {
  try {
    const ack = await request(state.socket, "ticket:take", {
      authority: state.chosenAuthority.code,
      language: languageCode,
    });
    showTicket(ack.ticket);
  } catch (error) {
    if (error.code === "conflict") {
      await sync();
      return;
    }
    setStatus(t("kiosk.error.ticket"), "error");
  }
}

function showTicket(ticket) {
  // A transferred customer's new ticket comes right after the call ended: the ticket stays.
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = null;
  state.ticket = ticket;
  renderTicket();
  if (document.body.dataset.screen !== "ticket") show("ticket");
  // Warm up the camera while waiting, so the call starts without a permission pause.
  prepareCamera();
}

function onTicketUpdate({ ticket }) {
  if (!ticket) return;
  if (state.ticket && ticket.id !== state.ticket.id && ticket.status === "transferred") return;
  if (["done", "cancelled", "no_show"].includes(ticket.status)) {
    if (state.ticket && state.ticket.id === ticket.id && !state.call) {
      state.ticket = null;
      goToStart();
    }
    return;
  }
  if (ticket.status === "transferred") return; // the new ticket follows in the next push
  state.ticket = ticket;
  if (!state.call) showTicket(ticket);
}

async function leaveQueue() {
  if (!state.ticket) return goToStart();
  try {
    await request(state.socket, "ticket:cancel", { ticket_id: state.ticket.id });
  } catch {
    /* already gone: the start screen is right either way */
  }
  state.ticket = null;
  stopCamera();
  goToStart();
}

// ---- appointment ---------------------------------------------------------------------------

const CODE_ALPHABET = "ACDEFHJKMNPRTUVWXY34679";

function buildKeypad() {
  const keypad = $("keypad");
  for (const ch of CODE_ALPHABET) {
    const key = document.createElement("button");
    key.type = "button";
    key.textContent = ch;
    key.tabIndex = -1; // the real input is the accessible path; the keypad is for touch
    key.addEventListener("click", () => {
      const input = $("booking-code");
      if (input.value.length < 16) input.value += ch;
    });
    keypad.append(key);
  }
  const erase = document.createElement("button");
  erase.type = "button";
  erase.className = "wide";
  erase.textContent = "⌫";
  erase.tabIndex = -1;
  erase.addEventListener("click", () => {
    const input = $("booking-code");
    input.value = input.value.slice(0, -1);
  });
  keypad.append(erase);
}

async function checkIn(event) {
  event.preventDefault();
  const error = $("appointment-error");
  const code = $("booking-code").value.replace(/[\s-]/g, "").toUpperCase();
  if (!code) {
    error.textContent = t("kiosk.appointment.empty");
    error.hidden = false;
    return;
  }
  try {
    const ack = await request(state.socket, "appointment:check_in", { code });
    error.hidden = true;
    $("booking-code").value = "";
    showTicket({ ...ack.ticket, booked_at: ack.appointment && ack.appointment.starts_at });
  } catch (err) {
    if (err.reason === "already_queued") {
      await sync();
      return;
    }
    const reasons = {
      too_early: "kiosk.appointment.tooEarly",
      code_expired: "kiosk.appointment.expired",
      cancelled: "kiosk.appointment.expired",
      wrong_office: "kiosk.appointment.wrongOffice",
      already_checked_in: "kiosk.appointment.alreadyCheckedIn",
    };
    error.textContent = t(reasons[err.reason] || "kiosk.appointment.wrongCode");
    error.hidden = false;
  }
}

// ---- call ----------------------------------------------------------------------------------

async function prepareCamera() {
  if (state.camera) return state.camera;
  try {
    state.camera = await openCamera();
    const self = $("tile-self").querySelector("video");
    self.srcObject = state.camera;
  } catch (error) {
    console.warn("no camera", error);
    state.camera = null;
  }
  return state.camera;
}

function stopCamera() {
  if (state.camera) for (const track of state.camera.getTracks()) track.stop();
  state.camera = null;
}

function roleOf(participantId) {
  const p = state.participants.find((x) => x.participant_id === participantId);
  if (p) return p;
  if (participantId && participantId.startsWith("doccam-")) return { role: "document_camera" };
  return { role: "expert" };
}

function renderParticipants() {
  const interpreter = state.participants.find(
    (p) => p.role === "interpreter" && !p.left,
  );
  const stage = $("call-stage");
  $("tile-interpreter").hidden = !interpreter;
  stage.dataset.spotlight = String(Boolean(interpreter && (interpreter.spotlight ||
                                                           interpreter.sign_language)));
  const expert = state.participants.find((p) => p.role === "expert");
  $("call-expert-name").textContent = expert ? t("kiosk.call.with", { name: expert.name }) : "";
  // Everyone in the call, the document camera too: the customer sees what takes part.
  const list = participantListElement("call-participants", $("call-expert-name"));
  if (list) {
    renderParticipantList(list, state.participants,
                          { selfId: state.media ? state.media.participantId : null });
  }
  if (interpreter) {
    $("tile-interpreter").querySelector(".tile-label").textContent =
      `${t("common.video.interpreter")}: ${interpreter.name}`;
  }
}

const audioElements = new Map();

function onTrack(info) {
  if (info.kind === "audio") {
    let el = audioElements.get(info.mid);
    if (!el) {
      el = document.createElement("audio");
      el.autoplay = true;
      document.body.append(el);
      audioElements.set(info.mid, el);
    }
    el.srcObject = new MediaStream([info.track]);
    return;
  }
  const who = roleOf(info.participantId);
  // The kiosk's own document camera goes to the expert; the customer sees the paper itself.
  if (who.role === "document_camera" || info.source === "document") return;
  const tile = who.role === "interpreter" ? $("tile-interpreter") : $("tile-expert");
  tile.querySelector("video").srcObject = new MediaStream([info.track]);
  tile.classList.add("has-video");
  tile.dataset.participant = info.participantId || "";
}

function onTrackRemoved(info) {
  const audio = audioElements.get(info.mid);
  if (audio) {
    audio.srcObject = null;
    audio.remove();
    audioElements.delete(info.mid);
  }
  for (const tile of document.querySelectorAll("#call-stage .video-tile:not(.self)")) {
    const video = tile.querySelector("video");
    if (video.srcObject && video.srcObject.getTracks().includes(info.track)) {
      video.srcObject = null;
      tile.classList.remove("has-video");
    }
  }
}

function onQuality(level) {
  const el = $("call-quality");
  el.dataset.level = level;
  el.querySelector(".quality-text").textContent = t(`common.quality.${level}`);
}

async function enterCall(call) {
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.call = call;
  state.participants = call.participants || [];
  renderParticipants();
  show("call");
  const camera = await prepareCamera();
  if (!state.media) {
    state.media = new CallMedia(state.socket, camera, {
      callbacks: { onTrack, onTrackRemoved, onQuality },
    });
  }
  try {
    await state.media.join(call.id);
    renderParticipants();
    mountDocuments(call);
  } catch (error) {
    if (error.code === "conflict") {
      endCall();
      return;
    }
    console.error("call:join failed", error);
    setStatus(t("kiosk.error.unavailable"), "error");
  }
}

function mountDocuments(call) {
  const mount = $("document-panel-mount");
  if (state.documentPanel || !mount) return;
  state.documentPanel = mountDocumentPanel(mount, {
    socket: state.socket, call, participantId: state.media.participantId, role: "customer",
  });
}

function endCall() {
  if (state.media) state.media.close();
  state.media = null;
  if (state.documentPanel && state.documentPanel.destroy) state.documentPanel.destroy();
  state.documentPanel = null;
  $("documents").classList.remove("active");
  for (const el of audioElements.values()) el.remove();
  audioElements.clear();
  for (const tile of document.querySelectorAll("#call-stage .video-tile:not(.self)")) {
    tile.querySelector("video").srcObject = null;
    tile.classList.remove("has-video");
  }
  stopCamera();
  state.call = null;
  state.ticket = null;
  state.participants = [];
  show("ended");
  state.endedTimer = setTimeout(goToStart, ENDED_SCREEN_SECONDS * 1000);
}

function goToStart() {
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = null;
  state.chosenAuthority = null;
  // The next customer starts in the office's language, whatever the last one picked.
  setLanguage(state.defaultLanguage || "fi", { remember: false });
  show("start");
}

// ---- service secretary ------------------------------------------------------------------

async function callSecretary() {
  const status = $("secretary-status");
  try {
    await request(state.socket, "secretary:call", {});
    status.textContent = t("kiosk.secretary.called");
  } catch {
    status.textContent = t("kiosk.secretary.failed");
  }
}

// ---- connection ------------------------------------------------------------------------

async function sync() {
  const ack = await request(state.socket, "flow:sync", {});
  state.officeName = ack.office_name || "";
  $("office-name").textContent = state.officeName;
  state.authorities = ack.authorities || [];
  const officeLanguage = ack.default_language || ack.office_default_language || null;
  if (officeLanguage && !state.defaultLanguage) {
    state.defaultLanguage = officeLanguage;
    if (!state.call && !state.ticket) setLanguage(officeLanguage, { remember: false });
  }
  renderAuthorities();
  if (ack.secretary_alert && !ack.secretary_alert.acknowledged_at) {
    $("secretary-status").textContent = t("kiosk.secretary.called");
  }
  if (ack.call && ack.call.status === "active") {
    state.ticket = ack.ticket;
    if (!state.call || state.call.id !== ack.call.id || !state.media) await enterCall(ack.call);
  } else if (ack.ticket && ["waiting", "serving"].includes(ack.ticket.status)) {
    showTicket(ack.ticket);
  } else if (!["ended", "appointment", "language"].includes(document.body.dataset.screen)) {
    show("start");
  }
}

function start() {
  mountLanguageSwitcher($("language-switcher"), { remember: false });
  // A shared public device: a customer's choice is not remembered for the next one. Until the
  // server tells the office's language, Finnish.
  setLanguage("fi", { remember: false });
  onLanguageChange(() => {
    renderAuthorities();
    if (state.chosenAuthority) renderServiceLanguages();
    renderTicket();
    renderParticipants();
  });
  buildKeypad();
  for (const button of document.querySelectorAll("[data-back]")) {
    button.addEventListener("click", () => show(button.dataset.back));
  }
  $("appointment-button").addEventListener("click", () => {
    $("appointment-error").hidden = true;
    show("appointment");
  });
  $("appointment-form").addEventListener("submit", checkIn);
  $("leave-queue").addEventListener("click", leaveQueue);
  $("ended-start").addEventListener("click", goToStart);
  $("secretary-button").addEventListener("click", callSecretary);

  const credential = loadCredential();
  if (!credential) {
    $("secretary-button").hidden = true;
    show("setup");
    return;
  }
  const socket = connect(credential);
  state.socket = socket;
  socket.on("connect", async () => {
    setStatus("");
    try {
      await sync();
    } catch (error) {
      console.error("flow:sync failed", error);
      setStatus(t("kiosk.error.unavailable"), "error");
      if (!document.body.dataset.screen) show("start");
    }
  });
  socket.on("connect_error", (error) => {
    if (error && error.message && /unauth|credential|forbidden/i.test(error.message)) {
      show("setup");
    }
    setStatus(t("common.reconnecting"));
  });
  socket.on("disconnect", () => setStatus(t("common.reconnecting")));
  socket.on("ticket:update", onTicketUpdate);
  socket.on("call:started", ({ call }) => enterCall(call));
  socket.on("call:participants", ({ call_id: callId, participants }) => {
    if (!state.call || state.call.id !== callId) return;
    state.participants = participants;
    renderParticipants();
  });
  socket.on("call:ended", ({ call_id: callId }) => {
    if (state.call && state.call.id === callId) endCall();
  });
  socket.on("call:replaced", ({ call_id: callId }) => {
    if (state.media && state.media.callId === callId) state.media.close();
    state.media = null;
  });
  socket.on("secretary:acknowledged", () => {
    $("secretary-status").textContent = t("kiosk.secretary.coming");
    // The note goes once the help has had time to arrive.
    setTimeout(() => { $("secretary-status").textContent = ""; }, 120000);
  });
  applyTranslations();
}

start();
