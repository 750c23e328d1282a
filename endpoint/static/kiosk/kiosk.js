// The kiosk customer UI: authority → language of service → ticket → call → thanks.
// Events: docs/signaling-events.md. State lives on the server; after every (re)connect
// `flow:sync` tells the kiosk whether it has a waiting ticket or a running call, so a reload
// lands on the same screen and rejoins the same call.
//
// Failures during a call: after a socket.io reconnect the kiosk joins the call again
// (CallMedia.rejoin; the server dropped the old socket's relay session), and CallMedia joins
// again by itself when the peer connection fails. The expert's tile never shows a frozen
// frame without a word: it says when our own connection is down, when the expert left the
// call (the server's `call:participants`) and when his picture stopped arriving
// (call-notices.js). The customer can end the call himself ("Lopeta puhelu", confirmed); when
// the expert does not come back (`call:ended` reason `expert_lost`) he keeps his turn at the
// head of the line (`ticket:requeue`).
//
// The call screen fits one screen (index.html, kiosk.css): the expert and an interpreter side
// by side, End call, received documents as a large "You received a document: View / Print"
// notice, the safety code on request, the customer's own small picture, the help button.
// The customer sends no files from here (no file picker): a paper goes to the expert through
// the clerk's document camera. Documents open in the kiosk's own viewer (doc-viewer.js:
// PDF.js into canvas, images in an <img>, print allowed, save not), and everything of them
// is dropped from memory when the call ends.

import {
  addStrings, applyTranslations, language, languageName, localName, mountLanguageSwitcher,
  onLanguageChange, setLanguage, t, waitText, formatDateTime,
} from "/static/common/js/i18n.js";
import { connect, request } from "/static/console/js/session.js";
import { CallMedia, openCamera } from "/static/console/js/call-media.js";
import { mountDocumentPanel } from "/static/console/js/documents.js";
import { participantListElement, renderParticipantList } from "/static/common/js/participant-list.js";
import { renderTileNotice, tileNotice } from "/static/common/js/call-notices.js";
import { closeAllViewers } from "/static/common/js/doc-viewer.js";
import { KIOSK_STRINGS } from "./strings.js";
import { startSelfTest } from "./self-test.js";

addStrings(KIOSK_STRINGS);

const CREDENTIAL_KEY = "etapalvelu.kiosk";
const SERVICE_LANGUAGES = { fi: ["fin", "swe", "eng"], sv: ["swe", "fin", "eng"],
                            en: ["eng", "fin", "swe"] };
// The thank-you screen stays long enough to read slowly before going back to the start.
const ENDED_SCREEN_SECONDS = 45;
// "The expert did not come back" waits longer for a decision, but not past the offer's expiry.
const LOST_SCREEN_SECONDS = 120;
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
  lost: null, // {callId, requeue} while the "expert did not come back" screen is up
  closedAuthority: null, // the authority of the "not serving now" screen
  serverOffset: 0, // server time - our clock, ms (the hours are the server's "now")
  offerTimer: null,
  dismissedLost: null, // the call whose offer went back to the start screen unused
  ended: null, // {callId, receipt, answer, sent} while the "ended" screen is up
  interpreting: [], // the language step's interpreting tiles (flow:sync interpreting_languages)
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
    const hours = hoursLine(authority);
    if (hours) button.append(span("sub hours-line", hours));
    if (isClosed(authority)) {
      button.classList.add("closed");
      button.append(span("hours-state", closedLine(authority)));
      button.addEventListener("click", () => showClosed(authority));
    } else {
      button.addEventListener("click", () => chooseAuthority(authority));
    }
    item.append(button);
    list.append(item);
  }
}

// ---- service hours (signaling/flow/office_offer.py) ----------------------------------------------
// Each authority of `flow:sync` has `hours`: {always_open, open_now, opens_at, closes_at,
// weekly: [{days: [0..6], intervals: [["09:00", "15:00"]]}], today, today_special}. Times are
// Europe/Helsinki whatever the kiosk's own time zone; "now" is the server's.

const DAY_KEYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const HELSINKI = "Europe/Helsinki";

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

const serverNow = () => new Date(Date.now() + state.serverOffset);
const isClosed = (authority) => Boolean(authority.hours && !authority.hours.open_now);

/** "09:00" → "9", "09:30" → "9.30" (fi, sv) or "9:30" (en); `full` keeps ":00" ("9.00"). */
function clockText(hhmm, full = false) {
  const [h, m] = hhmm.split(":").map(Number);
  if (!m && !full) return String(h);
  return `${h}${language() === "en" ? ":" : "."}${String(m).padStart(2, "0")}`;
}

// A word joiner on each side of the dash: "ma–to" and "9–15" never break across lines.
const DASH = "\u2060–\u2060";
const intervalsText = (intervals) =>
  intervals.map(([a, b]) => `${clockText(a)}${DASH}${clockText(b)}`).join(", ");

function weeklyText(weekly) {
  return weekly.map(({ days, intervals }) => {
    const first = t(`kiosk.day.${DAY_KEYS[days[0]]}`);
    const last = t(`kiosk.day.${DAY_KEYS[days[days.length - 1]]}`);
    return `${days.length > 1 ? `${first}${DASH}${last}` : first}\u00a0${intervalsText(intervals)}`;
  }).join(", ");
}

/** The parts of an instant in Helsinki: {year, month, day, hour, minute, weekday}. */
function helsinkiParts(date) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: HELSINKI, year: "numeric", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", weekday: "short",
  }).formatToParts(date);
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}

/** When service opens, in words: "tänään klo 9.00", "huomenna klo 9.00", "ma 30.11. klo 9.00". */
function whenText(iso) {
  const at = helsinkiParts(new Date(iso));
  const now = serverNow();
  const sameDay = (p, q) => p.year === q.year && p.month === q.month && p.day === q.day;
  const time = clockText(`${at.hour}:${at.minute}`, true);
  if (sameDay(at, helsinkiParts(now))) return t("kiosk.when.today", { time });
  if (sameDay(at, helsinkiParts(new Date(now.getTime() + 86400000)))) {
    return t("kiosk.when.tomorrow", { time });
  }
  const weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(at.weekday);
  const date = { fi: `${at.day}.${at.month}.`, sv: `${at.day}.${at.month}`,
                 en: `${at.day}/${at.month}` }[language()];
  return t("kiosk.when.date", { day: t(`kiosk.day.${DAY_KEYS[weekday]}`), date, time });
}

/** "Kela palvelee tässä pisteessä ma–to 9–15." (+ today's exception); null: always open. */
function hoursLine(authority) {
  const hours = authority.hours;
  if (!hours || hours.always_open) return null;
  const lines = [];
  if (hours.weekly.length) {
    lines.push(t("kiosk.hours.serves", { name: localName(authority), hours: weeklyText(hours.weekly) }));
  }
  if (hours.today_special) {
    lines.push(hours.today.length ? t("kiosk.hours.today", { hours: intervalsText(hours.today) })
      : t("kiosk.hours.todayClosed"));
  }
  return lines.join(" ");
}

function closedLine(authority) {
  const opens = authority.hours && authority.hours.opens_at;
  return opens ? t("kiosk.hours.closedUntil", { when: whenText(opens) }) : t("kiosk.hours.closedLong");
}

function renderClosed() {
  const authority = state.closedAuthority;
  if (!authority) return;
  $("closed-title").textContent = t("kiosk.closed.title", { name: localName(authority) });
  const opens = authority.hours && authority.hours.opens_at;
  $("closed-opens").textContent = opens ? t("kiosk.closed.opens", { when: whenText(opens) })
    : t("kiosk.closed.never");
  $("closed-hours").textContent = hoursLine(authority) || "";
}

/** Outside the hours: when service opens, and how to get a time booked instead. */
function showClosed(authority) {
  state.closedAuthority = authority;
  renderClosed();
  show("closed");
}

/** Sync again when an authority's line opens or closes (the server's time decides). */
function scheduleOfferRefresh() {
  clearTimeout(state.offerTimer);
  const now = serverNow().getTime();
  let next = now + 3600000;
  for (const a of state.authorities) {
    const h = a.hours;
    const change = h && !h.always_open && (h.open_now ? h.closes_at : h.opens_at);
    if (change) next = Math.min(next, Date.parse(change));
  }
  const delay = Math.min(3600000, Math.max(5000, next - now + 1000));
  state.offerTimer = setTimeout(() => {
    if (!state.call) sync().catch(() => {});
  }, delay);
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
  // The office may offer this authority in some languages only (its catalogue).
  const offered = state.chosenAuthority.languages;
  for (const code of SERVICE_LANGUAGES[language()].filter((c) => !offered || offered.includes(c))) {
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
  renderInterpreting();
}

// ---- interpreting need (issue 17) ----------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";
// A hand signing (sign languages) and a speech bubble with a sample of the language's script.
const HAND_ICON = '<path d="M21 35V15a3 3 0 0 1 6 0v15M27 30V10a3 3 0 0 1 6 0v20M33 30V12a3 3 0 0 1 6 0v19M39 31V18a3 3 0 0 1 6 0v19c0 12-7 21-17 21-7 0-11-4-15-10l-6-11a3.2 3.2 0 0 1 5.6-3.2L21 40"/>' +
  '<path d="M50 6q7 5 6 14M47 12q3 3 3 7"/>';
const BUBBLE_ICON = '<path d="M10 8h44a7 7 0 0 1 7 7v25a7 7 0 0 1-7 7H28l-13 11V47h-5a7 7 0 0 1-7-7V15a7 7 0 0 1 7-7z"/>';

function languageIcon(entry) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 64 64");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `lang-icon ${entry.sign_language ? "sign" : "spoken"}`);
  svg.innerHTML = entry.sign_language ? HAND_ICON : BUBBLE_ICON;
  if (!entry.sign_language) {
    const sample = document.createElementNS(SVG_NS, "text");
    sample.setAttribute("x", "32");
    sample.setAttribute("y", "35");
    sample.setAttribute("text-anchor", "middle");
    sample.setAttribute("dominant-baseline", "middle");
    sample.setAttribute("font-size", "22");
    sample.textContent = entry.sample || entry.code.toUpperCase();
    svg.append(sample);
  }
  return svg;
}

/** The service language an interpreted customer is served in: the screen's language where
 * the office offers it, else the first one it offers (the interpreter bridges the gap). */
function interpretedServiceLanguage() {
  const offered = state.chosenAuthority && state.chosenAuthority.languages;
  const own = SERVICE_LANGUAGES[language()];
  return own.find((c) => !offered || offered.includes(c)) || (offered && offered[0]) || own[0];
}

function renderInterpreting() {
  const section = $("interpreting");
  const list = $("interpreting-list");
  list.replaceChildren();
  section.hidden = !state.interpreting.length;
  if (!state.interpreting.length) return;
  const service = interpretedServiceLanguage();
  $("interpreting-help").textContent =
    t("kiosk.language.interpretingHelp", { language: languageName(service) });
  for (const entry of state.interpreting) {
    const item = document.createElement("div");
    item.setAttribute("role", "listitem");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.interpreting = entry.code;
    const names = document.createElement("span");
    names.className = "names";
    // The language's own name, in its own script and direction; the screen language's name
    // of it below when that differs.
    const own = document.createElement("span");
    own.className = "own";
    own.textContent = entry.own_name || languageName(entry.code);
    if (entry.own_name) {
      own.lang = entry.lang;
      own.dir = entry.dir;
    }
    names.append(own);
    const local = languageName(entry.code);
    if (local !== entry.code && local.toLowerCase() !== own.textContent.toLowerCase()) {
      const sub = document.createElement("span");
      sub.className = "sub";
      sub.textContent = local;
      names.append(sub);
    }
    button.append(languageIcon(entry), names);
    button.addEventListener("click", () => takeTicket(interpretedServiceLanguage(), entry.code));
    item.append(button);
    list.append(item);
  }
}

/** "Interpreting: Arabic" on the ticket, named in the screen's language. */
function interpretingName(code) {
  const name = languageName(code);
  if (name !== code) return name;
  const entry = state.interpreting.find((e) => e.code === code);
  return (entry && entry.own_name) || code;
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
  const interpreting = $("ticket-interpreting");
  interpreting.hidden = !ticket.interpreting;
  interpreting.textContent = ticket.interpreting
    ? t("kiosk.ticket.interpreting", { language: interpretingName(ticket.interpreting) }) : "";
  const ahead = ticket.position == null ? null : ticket.position - 1;
  let position = "";
  if (ticket.status === "serving") position = t("kiosk.ticket.calling");
  else if (ahead === 0) position = t("kiosk.ticket.next");
  else if (ahead === 1) position = t("kiosk.ticket.positionOne");
  else if (ahead != null) position = t("kiosk.ticket.position", { n: ahead });
  $("ticket-position").textContent = position;
  $("ticket-wait").textContent = ticket.status === "waiting" ? waitLine(ticket) : "";
}

/** What the wait looks like, in words the customer can act on (estimate_reason from the
 * server): soon, about N minutes, or why nobody can say (nobody speaks the language, nobody
 * of the authority is on duty) — never a number that would be a guess. */
function waitLine(ticket) {
  switch (ticket.estimate_reason) {
    case "soon":
      return t("kiosk.ticket.soon");
    case "no_expert_for_language":
      return t("kiosk.ticket.noLanguage");
    case "no_expert_online":
      return t("kiosk.ticket.noExpert");
    default:
      return ticket.estimated_wait_seconds != null
        ? t("kiosk.ticket.wait", { wait: waitText(ticket.estimated_wait_seconds) })
        : "";
  }
}

// ---- queue --------------------------------------------------------------------------------

async function takeTicket(languageCode, interpreting = null) {
  try {
    const ack = await request(state.socket, "ticket:take", {
      authority: state.chosenAuthority.code,
      language: languageCode,
      ...(interpreting ? { interpreting } : {}),
    });
    showTicket(ack.ticket);
  } catch (error) {
    if (error.code === "conflict") {
      await sync();
      return;
    }
    if (error.code === "closed") {
      // The hours ended meanwhile: the fresh hours say when it opens again.
      const code = state.chosenAuthority.code;
      await sync().catch(() => {});
      showClosed(state.authorities.find((a) => a.code === code) || state.chosenAuthority);
      return;
    }
    if (error.code === "forbidden" && /offered/.test(error.reason || "")) {
      await sync().catch(() => {});
      show("start");
      setStatus(t("kiosk.error.notOffered"), "error");
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
      not_offered: "kiosk.appointment.notOffered",
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
  stage.dataset.people = interpreter ? "2" : "1";
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
  if (info.source === "screen") {
    showScreen(info.track);
    return;
  }
  const tile = who.role === "interpreter" ? $("tile-interpreter") : $("tile-expert");
  tile.querySelector("video").srcObject = new MediaStream([info.track]);
  tile.classList.add("has-video");
  tile.dataset.participant = info.participantId || "";
}

/** The expert shares his screen: it takes the large place, his face moves aside; `null`
 * (he stopped, or the call ended) returns the stage to the faces. */
function showScreen(track) {
  const tile = $("tile-screen");
  tile.querySelector("video").srcObject = track ? new MediaStream([track]) : null;
  tile.hidden = !track;
  tile.classList.toggle("has-video", Boolean(track));
  $("call-stage").dataset.screen = String(Boolean(track));
}

function onTrackRemoved(info) {
  const audio = audioElements.get(info.mid);
  // After a rejoin the same mid may already carry the new connection's track.
  if (audio && (!audio.srcObject || audio.srcObject.getTracks().includes(info.track))) {
    audio.srcObject = null;
    audio.remove();
    audioElements.delete(info.mid);
  }
  for (const tile of document.querySelectorAll("#call-stage .video-tile:not(.self)")) {
    const video = tile.querySelector("video");
    if (video.srcObject && video.srcObject.getTracks().includes(info.track)) {
      if (tile.id === "tile-screen") {
        showScreen(null);
        continue;
      }
      video.srcObject = null;
      tile.classList.remove("has-video");
    }
  }
}

function onQuality(level) {
  const el = $("call-quality");
  el.dataset.level = level;
  const words = el.querySelector(".quality-text");
  words.dataset.i18n = `common.quality.${level}`; // a language switch keeps the level
  words.textContent = t(`common.quality.${level}`);
}

async function enterCall(call) {
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = null;
  state.lost = null;
  state.call = call;
  state.participants = call.participants || [];
  renderParticipants();
  show("call");
  renderNotices();
  const camera = await prepareCamera();
  if (!state.call || state.call.id !== call.id) return; // ended while the camera opened
  if (!state.media) {
    state.media = new CallMedia(state.socket, camera, {
      callbacks: {
        onTrack, onTrackRemoved, onQuality, onJoined,
        onState: renderNotices,
        onRemoteMedia: renderNotices,
        onJoinRefused: () => sync().catch(() => {}),
      },
    });
  }
  try {
    await state.media.join(call.id);
  } catch (error) {
    if (error.code === "conflict") {
      endCall();
      return;
    }
    console.error("call:join failed", error);
    setStatus(t("kiosk.error.unavailable"), "error");
  }
}

/** After every successful call:join, the first and each rejoin. */
function onJoined() {
  if (!state.call) return;
  renderParticipants();
  mountDocuments(state.call);
  renderNotices();
}

/** The notices over the video tiles (call-notices.js). */
function renderNotices() {
  const expertTile = $("tile-expert");
  const interpreterTile = $("tile-interpreter");
  if (!state.call) {
    renderTileNotice(expertTile, null);
    renderTileNotice(interpreterTile, null);
    return;
  }
  const media = state.media;
  const socketDown = !state.socket || !state.socket.connected;
  const selfDown = socketDown || Boolean(media && media.state === "reconnecting");
  const expert = state.participants.find((p) => p.role === "expert");
  const expertId = (expert && expert.participant_id) || expertTile.dataset.participant;
  renderTileNotice(expertTile, tileNotice({
    selfDown, participant: expert, role: "expert",
    media: media && expertId ? media.remoteMedia(expertId) : null,
  }));
  const interpreter = state.participants.find((p) => p.role === "interpreter" && !p.left);
  renderTileNotice(interpreterTile, interpreter && !selfDown ? tileNotice({
    participant: interpreter, role: "interpreter",
    media: media ? media.remoteMedia(interpreter.participant_id) : null,
  }) : null);
}

// ---- ending the call at the kiosk ---------------------------------------------------------

function askEndCall() {
  if (!state.call) return;
  const dialog = $("end-call-dialog");
  if (!dialog.open) dialog.showModal();
  $("end-call-no").focus();
}

function closeEndDialog() {
  const dialog = $("end-call-dialog");
  if (dialog && dialog.open) dialog.close();
}

async function confirmEndCall() {
  closeEndDialog();
  if (!state.call) return;
  const callId = state.call.id;
  try {
    await request(state.socket, "call:end", { call_id: callId });
    if (state.call && state.call.id === callId) endCall("ended_by_customer");
  } catch (error) {
    if (error.reason === "call_ended") {
      if (state.call && state.call.id === callId) endCall("ended");
      return;
    }
    console.error("call:end failed", error);
    setStatus(t("kiosk.call.endFailed"), "error");
    setTimeout(() => {
      if ($("status").textContent === t("kiosk.call.endFailed")) setStatus("");
    }, 8000);
  }
}

// ---- the expert did not come back ----------------------------------------------------------

function showLost(call, requeue) {
  state.lost = { callId: call.id, requeue: requeue || null };
  const error = $("lost-error");
  error.hidden = true;
  error.removeAttribute("data-i18n");
  const button = $("lost-requeue");
  button.hidden = false;
  button.disabled = false;
  show("lost");
  const expiresIn = requeue && requeue.expires_at
    ? Date.parse(requeue.expires_at) - Date.now() : Number.POSITIVE_INFINITY;
  const wait = Math.max(5000, Math.min(LOST_SCREEN_SECONDS * 1000, expiresIn || 0));
  state.endedTimer = setTimeout(goToStart, wait);
}

function lostError(key) {
  const error = $("lost-error");
  error.dataset.i18n = key; // follows a language switch
  error.textContent = t(key);
  error.hidden = false;
}

async function requeue() {
  const lost = state.lost;
  if (!lost) return goToStart();
  const button = $("lost-requeue");
  button.disabled = true;
  try {
    const ack = await request(state.socket, "ticket:requeue", { call_id: lost.callId });
    state.lost = null;
    showTicket(ack.ticket);
  } catch (error) {
    button.disabled = false;
    if (["already_requeued", "has_ticket"].includes(error.reason)) {
      // Done already (another press, a reload): the server knows the ticket.
      state.lost = null;
      await sync().catch(() => {});
      return;
    }
    if (["expired", "not_requeueable"].includes(error.reason)) {
      button.hidden = true;
      lostError("kiosk.lost.expired");
    } else {
      lostError("kiosk.lost.failed");
    }
  }
}

function mountDocuments(call) {
  const mount = $("document-panel-mount");
  if (state.documentPanel || !mount) return;
  // Receive only: no file picker in front of the customer; the safety code on request.
  state.documentPanel = mountDocumentPanel(mount, {
    socket: state.socket, call, participantId: state.media.participantId, role: "customer",
    sending: false, codesOnRequest: true,
  });
}

/** A document arrived: its notice is at the top of the list, scrolled into sight. */
function onDocumentReceived() {
  const panel = $("documents");
  panel.scrollTop = 0;
}

function endCall(reason = "ended", { requeue: offer = null } = {}) {
  const endedCall = state.call;
  closeEndDialog();
  if (state.media) state.media.close();
  state.media = null;
  if (state.documentPanel && state.documentPanel.destroy) state.documentPanel.destroy();
  state.documentPanel = null;
  // The documents leave with the call: open viewers, canvases, decrypted bytes.
  closeAllViewers();
  $("documents").classList.remove("active");
  for (const el of audioElements.values()) el.remove();
  audioElements.clear();
  for (const tile of document.querySelectorAll("#call-stage .video-tile:not(.self)")) {
    tile.querySelector("video").srcObject = null;
    tile.classList.remove("has-video");
  }
  showScreen(null);
  stopCamera();
  state.call = null;
  state.ticket = null;
  state.participants = [];
  renderNotices();
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = null;
  if (reason === "expert_lost" && endedCall) {
    showLost(endedCall, offer);
    return;
  }
  // Ended by the expert or the customer, abandoned, ended by the office: thanks.
  show("ended");
  state.endedTimer = setTimeout(goToStart, ENDED_SCREEN_SECONDS * 1000);
  showEndedExtras(endedCall, reason);
}

// ---- receipt and feedback on the "ended" screen ------------------------------------------
// The receipt (signaling/records/receipts.py) is issued when the call has ended: office, authority,
// when the matter became pending, the log entries and the received documents' hashes, and a
// code to quote later. One feedback question (signaling/records/feedback.py), anonymous: the server
// counts the answer for the call's office and authority and keeps no link to the call.

function showEndedExtras(call, reason) {
  state.ended = call ? { callId: call.id, receipt: null, answer: null, sent: false } : null;
  $("receipt").hidden = true;
  resetFeedback();
  // A transferred customer goes on to his new line: no receipt, no question yet.
  if (!call || reason === "transferred") return;
  $("feedback").hidden = false;
  if (reason !== "abandoned") issueReceipt(call.id);
}

async function issueReceipt(callId) {
  try {
    const ack = await request(state.socket, "receipt:issue", { call_id: callId });
    if (!state.ended || state.ended.callId !== callId) return;
    state.ended.receipt = ack.receipt;
    renderReceipt();
  } catch (error) {
    // No receipt (nobody served the customer, or the server could not issue one): the
    // screen still thanks him; the call is in the log either way.
    console.warn("no receipt", error);
  }
}

function renderReceipt() {
  const receipt = state.ended && state.ended.receipt;
  const box = $("receipt");
  if (!receipt) {
    box.hidden = true;
    return;
  }
  $("receipt-code").textContent = receipt.code;
  $("receipt-office").textContent = receipt.office_name;
  $("receipt-authority").textContent = receipt.authority_name
    ? localName({ name: receipt.authority_name }) : receipt.authority_code;
  $("receipt-expert").textContent = receipt.expert_name || "";
  $("receipt-pending").textContent = formatDateTime(receipt.pending_at);
  $("receipt-entries").textContent = [
    t("kiosk.receipt.entryReceipt", { seq: receipt.log_seq }),
    receipt.record_seq ? t("kiosk.receipt.entryRecord", { seq: receipt.record_seq })
      : t("kiosk.receipt.recordLater"),
  ].join(", ");
  const list = $("receipt-documents");
  list.replaceChildren();
  for (const doc of receipt.documents) {
    const item = document.createElement("li");
    item.textContent = t("kiosk.receipt.document", { seq: doc.seq, sha256: doc.sha256 });
    list.append(item);
  }
  if (!receipt.documents.length) {
    const item = document.createElement("li");
    item.textContent = t("kiosk.receipt.noDocuments");
    list.append(item);
  }
  box.hidden = false;
}

function resetFeedback() {
  $("feedback").hidden = true;
  $("feedback-faces").hidden = false;
  $("feedback-reasons").hidden = true;
  $("feedback-skip").hidden = false;
  $("feedback-thanks").textContent = "";
  delete $("feedback-thanks").dataset.i18n;
  for (const face of document.querySelectorAll("#feedback-faces .face")) {
    face.setAttribute("aria-pressed", "false");
  }
}

/** A touch on the "ended" screen: the customer is still there, give him the full time. */
function keepEndedScreen() {
  if (document.body.dataset.screen !== "ended") return;
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = setTimeout(goToStart, ENDED_SCREEN_SECONDS * 1000);
}

function chooseFace(answer) {
  if (!state.ended || state.ended.sent) return;
  state.ended.answer = answer;
  for (const face of document.querySelectorAll("#feedback-faces .face")) {
    face.setAttribute("aria-pressed", String(face.dataset.answer === answer));
  }
  $("feedback-reasons").hidden = false;
  // Chosen: "send without a reason" takes the place of "skip".
  $("feedback-skip").hidden = true;
  keepEndedScreen();
}

/** Send the chosen face (with a reason or without); once per call. */
function sendFeedback(reason = null) {
  const ended = state.ended;
  if (!ended || ended.sent || !ended.answer) return;
  ended.sent = true;
  const payload = { call_id: ended.callId, answer: ended.answer };
  if (reason) payload.reason = reason;
  request(state.socket, "feedback:give", payload).catch((error) => {
    console.warn("feedback not counted", error);
  });
  if (state.ended === ended) {
    $("feedback-faces").hidden = true;
    $("feedback-reasons").hidden = true;
    $("feedback-skip").hidden = true;
    $("feedback-thanks").dataset.i18n = "kiosk.feedback.thanks";
    $("feedback-thanks").textContent = t("kiosk.feedback.thanks");
  }
}

function skipFeedback() {
  if (state.ended) state.ended.sent = true;
  $("feedback").hidden = true;
  $("ended-start").focus({ preventScroll: true });
}

/** Leaving the "ended" screen: a face chosen without a reason still counts; then the
 * receipt goes from the screen so the next customer does not see it. */
function finishEndedExtras() {
  if (state.ended && state.ended.answer && !state.ended.sent) sendFeedback(null);
  state.ended = null;
  $("receipt").hidden = true;
  resetFeedback();
}

function wireEndedExtras() {
  for (const face of document.querySelectorAll("#feedback-faces .face")) {
    face.addEventListener("click", () => chooseFace(face.dataset.answer));
  }
  for (const button of document.querySelectorAll("#feedback-reasons [data-reason]")) {
    button.addEventListener("click", () => sendFeedback(button.dataset.reason));
  }
  $("feedback-send").addEventListener("click", () => sendFeedback(null));
  $("feedback-skip").addEventListener("click", skipFeedback);
  $("receipt-print").addEventListener("click", () => {
    keepEndedScreen();
    window.print();
  });
}

function goToStart() {
  finishEndedExtras();
  closeAllViewers();
  if (state.endedTimer) clearTimeout(state.endedTimer);
  state.endedTimer = null;
  // Once the screen went back to the start, the offer is not shown to the next customer.
  if (state.lost) state.dismissedLost = state.lost.callId;
  state.lost = null;
  state.chosenAuthority = null;
  // The next customer starts in the office's language, whatever the last one picked.
  setLanguage(state.defaultLanguage || "fi", { remember: false });
  show("start");
}

// ---- service secretary ------------------------------------------------------------------

/** The help line under the button, kept by key so that a language switch translates it. */
function secretaryStatus(key) {
  const status = $("secretary-status");
  if (key) status.dataset.i18n = key;
  else delete status.dataset.i18n;
  status.textContent = key ? t(key) : "";
}

async function callSecretary() {
  try {
    await request(state.socket, "secretary:call", {});
    secretaryStatus("kiosk.secretary.called");
  } catch {
    secretaryStatus("kiosk.secretary.failed");
  }
}

// ---- connection ------------------------------------------------------------------------

/** `reconnect`: called for a (re)connect of the socket — a call still on is joined again. */
async function sync({ reconnect = false } = {}) {
  const ack = await request(state.socket, "flow:sync", {});
  state.officeName = ack.office_name || "";
  $("office-name").textContent = state.officeName;
  state.authorities = ack.authorities || [];
  state.interpreting = ack.interpreting_languages || [];
  if (ack.server_time) state.serverOffset = Date.parse(ack.server_time) - Date.now();
  const officeLanguage = ack.default_language || ack.office_default_language || null;
  if (officeLanguage && !state.defaultLanguage) {
    state.defaultLanguage = officeLanguage;
    if (!state.call && !state.ticket) setLanguage(officeLanguage, { remember: false });
  }
  renderAuthorities();
  scheduleOfferRefresh();
  if (state.closedAuthority) {
    state.closedAuthority = state.authorities.find((a) => a.code === state.closedAuthority.code)
      || state.closedAuthority;
    renderClosed();
  }
  if (ack.secretary_alert && !ack.secretary_alert.acknowledged_at) {
    secretaryStatus("kiosk.secretary.called");
  }
  if (ack.call && ack.call.status === "active") {
    state.ticket = ack.ticket;
    if (state.call && state.call.id === ack.call.id && state.media) {
      state.call = ack.call;
      state.participants = ack.call.participants || state.participants;
      renderParticipants();
      if (document.body.dataset.screen !== "call") show("call");
      // The server dropped our old socket's relay session: join again, keeping the camera,
      // the documents and the screen as they are.
      if (reconnect) state.media.rejoin("socket_reconnect").catch(() => {});
      renderNotices();
    } else {
      // Another call than the one on screen (ours ended while we were away): start clean.
      if (state.call && state.call.id !== ack.call.id) endCall();
      await enterCall(ack.call);
    }
    return;
  }
  // `requeue` ({call_id, authority_code, language, expires_at}): the expert of the kiosk's
  // last call did not come back and the customer may still keep his place.
  const offer = ack.requeue || null;
  if (state.call) {
    // The call ended while the kiosk was away.
    const ended = ack.call && ack.call.id === state.call.id ? ack.call : null;
    const lost = offer && offer.call_id === state.call.id;
    endCall(lost ? "expert_lost" : (ended && ended.end_reason) || "ended", { requeue: offer });
    if (lost) return;
  }
  if (ack.ticket && ["waiting", "serving"].includes(ack.ticket.status)) {
    showTicket(ack.ticket);
  } else if (offer && !state.lost && state.dismissedLost !== offer.call_id) {
    // A reload after the expert was lost: offer the place in line again.
    showLost({ id: offer.call_id }, offer);
  } else if (!["ended", "lost", "appointment", "language", "closed"]
    .includes(document.body.dataset.screen)) {
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
    renderClosed();
    if (state.chosenAuthority) renderServiceLanguages();
    renderTicket();
    renderParticipants();
    renderNotices();
    renderReceipt();
  });
  buildKeypad();
  for (const button of document.querySelectorAll("[data-back]")) {
    button.addEventListener("click", () => show(button.dataset.back));
  }
  $("appointment-button").addEventListener("click", () => {
    $("appointment-error").hidden = true;
    show("appointment");
  });
  $("closed-appointment").addEventListener("click", () => {
    $("appointment-error").hidden = true;
    show("appointment");
  });
  $("closed-secretary").addEventListener("click", callSecretary);
  $("appointment-form").addEventListener("submit", checkIn);
  $("leave-queue").addEventListener("click", leaveQueue);
  $("ended-start").addEventListener("click", goToStart);
  wireEndedExtras();
  $("secretary-button").addEventListener("click", callSecretary);
  $("end-call").addEventListener("click", askEndCall);
  $("end-call-yes").addEventListener("click", confirmEndCall);
  $("end-call-no").addEventListener("click", closeEndDialog);
  $("lost-requeue").addEventListener("click", requeue);
  $("lost-stop").addEventListener("click", goToStart);
  $("documents").addEventListener("document-received", onDocumentReceived);

  const credential = loadCredential();
  if (!credential) {
    $("secretary-button").hidden = true;
    show("setup");
    return;
  }
  const socket = connect(credential);
  state.socket = socket;
  // Camera, microphone, speaker and relay tested now and hourly; the clerk hears what fails.
  startSelfTest(socket, { busy: () => Boolean(state.call) });
  socket.on("connect", async () => {
    setStatus("");
    renderNotices();
    try {
      await sync({ reconnect: true });
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
    if (state.call) renderNotices(); // the notice on the expert's picture says it
    else setStatus(t("common.reconnecting"));
  });
  socket.on("disconnect", () => {
    if (state.call) renderNotices();
    else setStatus(t("common.reconnecting"));
  });
  socket.on("ticket:update", onTicketUpdate);
  // The administrator changed the office's catalogue or hours.
  socket.on("office:offer_changed", () => sync().catch(() => {}));
  socket.on("call:started", ({ call }) => enterCall(call));
  socket.on("call:participants", ({ call_id: callId, participants }) => {
    if (!state.call || state.call.id !== callId) return;
    state.participants = participants;
    renderParticipants();
    renderNotices();
  });
  socket.on("call:ended", ({ call_id: callId, reason, requeue: offer }) => {
    if (state.call && state.call.id === callId) endCall(reason || "ended", { requeue: offer });
  });
  socket.on("call:replaced", ({ call_id: callId }) => {
    if (state.media && state.media.callId === callId) {
      state.media.close();
      state.media = null;
    }
    renderNotices();
  });
  socket.on("secretary:acknowledged", () => {
    secretaryStatus("kiosk.secretary.coming");
    // The note goes once the help has had time to arrive.
    setTimeout(() => secretaryStatus(null), 120000);
  });
  applyTranslations();
}

start();
