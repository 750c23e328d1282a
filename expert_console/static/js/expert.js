// The expert console (and, for a user with role `clerk`, the service secretary's view).
// Events: docs/signaling-events.md.

import {
  clockText, formatDateTime, languageName, localName, onLanguageChange, t, waitText,
} from "/static/common/js/i18n.js";
import { $, errorText, notify, selectView, setStatus, startConsole } from "./console-app.js";
import { CallPanel } from "./call-panel.js";
import { CallControls } from "./call-controls.js";
import { DocCamPreview } from "./doccam-preview.js";
import { SheetStitcher, watchStitchedSheets } from "./doccam-stitch.js";
import { QueueTrends } from "./queue-trends.js";
import { mountClerkBooking } from "./clerk-booking.js";
import { ClerkChat } from "./clerk-chat.js";
import { KioskHealth } from "./kiosk-health.js";
import { mountRemoteCustomers } from "./remote-customers.js";
import { request } from "./session.js";
import { ensureSigningKeyRegistered, signRecord } from "/static/common/js/document-crypto.js";
import { el } from "/static/common/js/dom.js";

// Interpreting languages offered in the request menu: sign languages first (the ring's
// most frequent need), then spoken ones.
export const INTERPRETING_LANGUAGES = [
  "fse", "fss", "ara", "rus", "som", "ukr", "fas", "est", "eng", "swe", "fin", "sme",
];
const SERVICE_LANGUAGES = ["fin", "swe", "eng"];
const OUTCOMES = ["resolved", "pending", "referred", "interrupted"];

const state = {
  ctx: null,
  role: null,
  authorities: [],
  allAuthorities: [], // transfer targets: every enabled authority, when the server lists them
  queues: new Map(), // authority_id → [QueueView]
  queuesAt: 0, // when the waiting times were read, to tick them on locally
  call: null,
  unfiled: [],
  recordCall: null,
  view: "queues",
  panel: null,
  secretaryAlerts: [],
  officeCalls: [],
  doccamNotices: new Map(), // call id → the document camera's latest notice (clerk's rows)
  preview: null, // the clerk's document-camera preview: {callId, preview, state}
  stitcher: null, // stitching a large sheet (doccam-stitch.js)
  desk: null, // the clerk's desk entries: {services, authorities, entries}
  appointments: [],
  // The expert's Ed25519 signing key (non-extractable, in this browser's IndexedDB), once
  // registered with the server; service records are signed with it (docs/document-protocol.md §6).
  signingKey: null,
  controls: null, // the call-control bar (call-controls.js)
  trends: null, // queue lengths over the last half hour (queue-trends.js)
};
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.expert = state;
// The clerk's chat in an office call and his kiosks' self-test warnings (issue 18).
let clerkChat = null;
let kioskHealth = null;

// ---- views ---------------------------------------------------------------------------------

function showView(name, { focus = true } = {}) {
  state.view = name;
  selectView(name);
  document.body.classList.toggle("in-call", name === "call");
  // In a call or filing its record, the other views wait.
  const locked = name === "call" || name === "record";
  for (const b of document.querySelectorAll(".console-nav button")) b.disabled = locked;
  if (focus) {
    const heading = document.querySelector(`#view-${name} h2`);
    if (heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  }
  if (name === "history") loadHistory();
  if (name === "appointments") loadAppointments();
}

function authorityById(id) {
  return state.authorities.find((a) => a.id === id);
}

/** An authority's name in the UI language, or its code when this console has no list. */
function authorityLabel(id, code) {
  const authority = authorityById(id);
  if (authority) return localName(authority);
  return code ? code.charAt(0).toUpperCase() + code.slice(1) : "";
}

// ---- queues --------------------------------------------------------------------------------

function setQueues(queues) {
  for (const queue of queues) {
    const list = state.queues.get(queue.authority_id) || [];
    const rest = list.filter((q) => q.language !== queue.language);
    state.queues.set(queue.authority_id, [...rest, queue]);
  }
  state.queuesAt = Date.now();
  recordTrends();
  renderQueues();
}

function replaceAuthorityQueues(authorityId, queues) {
  state.queues.set(authorityId, queues.filter((q) => q.authority_id === authorityId));
  state.queuesAt = Date.now();
  recordTrends(authorityId);
  renderQueues();
}

function renderQueues() {
  const container = state.role === "clerk" ? $("clerk-queues") : $("queues");
  if (!container) return;
  const elapsed = (Date.now() - state.queuesAt) / 1000;
  container.replaceChildren();
  let total = 0;
  const all = [...state.queues.values()].flat()
    .filter((q) => q.tickets && q.tickets.length)
    .sort((a, b) => a.authority_id - b.authority_id || a.language.localeCompare(b.language));
  for (const queue of all) {
    total += queue.tickets.length;
    const authority = authorityById(queue.authority_id);
    const table = el("table", { class: "queue-table" });
    table.append(el("caption", {
      text: t("console.queues.queueCaption", {
        authority: authority ? localName(authority) : queue.authority_code,
        language: languageName(queue.language),
        n: queue.tickets.length,
      }),
    }));
    const head = el("tr");
    for (const key of ["number", "office", "language", "waiting", "kind"]) {
      head.append(el("th", { scope: "col", text: t(`console.queues.${key}`) }));
    }
    if (state.role === "expert") head.append(el("th", { scope: "col" }, el("span", {
      class: "visually-hidden", text: t("console.queues.take") })));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const ticket of queue.tickets) {
      const row = el("tr", { "data-ticket": String(ticket.ticket_id) });
      row.append(
        el("td", { class: "num", text: ticket.number }),
        el("td", { text: ticket.office_name || "" }),
        // The customer's interpreting need (issue 17): the ring starts when he is taken.
        el("td", { text: languageName(ticket.language) + (ticket.interpreting
          ? `, ${t("console.queues.interpreting", { language: languageName(ticket.interpreting) })}`
          : "") }),
        el("td", { class: "wait", "data-base": String(ticket.waiting_seconds || 0),
                   text: clockText((ticket.waiting_seconds || 0) + elapsed) }),
        el("td", { text: t(`console.kind.${ticket.kind}`) }),
      );
      if (state.role === "expert") {
        const take = el("button", {
          type: "button", class: "secondary", text: t("console.queues.take"),
          "aria-label": t("console.queues.takeLabel", { number: ticket.number }),
          onclick: () => take(ticket.ticket_id),
        });
        const cell = el("td", { class: "actions" }, take);
        if (transferTargets(queue.authority_id).length) {
          cell.append(" ", el("button", {
            type: "button", class: "secondary", "data-transfer": String(ticket.ticket_id),
            text: t("console.queues.transfer"),
            "aria-label": t("console.queues.transferLabel", { number: ticket.number }),
            onclick: () => openQueueTransfer(ticket, queue.authority_id),
          }));
        }
        row.append(cell);
      }
      body.append(row);
    }
    table.append(body);
    container.append(el("div", { class: "table-scroll" }, table));
  }
  if (!total) container.append(el("p", { class: "empty", text: t("console.queues.empty") }));
  const takeNext = $("take-next");
  if (takeNext) takeNext.disabled = !total || Boolean(state.call);
}

/** Every line's length now into the half-hour history (`authorityId`: only that authority's
 * lines were pushed; a line of it missing from the push is empty now). */
function recordTrends(authorityId = null) {
  if (state.role !== "expert") return;
  if (!state.trends) state.trends = new QueueTrends($("queue-trends"));
  const now = Date.now();
  const seen = new Set();
  for (const [id, list] of state.queues) {
    if (authorityId != null && id !== authorityId) continue;
    for (const queue of list) {
      seen.add(`${id}|${queue.language}`);
      state.trends.record(id, queue.language, (queue.tickets || []).length, now);
    }
  }
  state.trends.emptyOthers(authorityId, seen, now);
  renderTrends();
}

function renderTrends() {
  if (!state.trends) return;
  state.trends.render((id) => authorityLabel(id, ""));
}

/** Where a customer of this authority's line can be sent: every other enabled authority. */
function transferTargets(authorityId) {
  const all = state.allAuthorities.length ? state.allAuthorities : state.authorities;
  return all.filter((a) => a.id !== authorityId);
}

let queueTransferTicket = null;

function openQueueTransfer(ticket, authorityId) {
  queueTransferTicket = ticket;
  $("queue-transfer-title").textContent =
    t("console.queues.transferLabel", { number: ticket.number });
  const select = $("queue-transfer-authority");
  select.replaceChildren(...transferTargets(authorityId).map((authority) =>
    el("option", { value: String(authority.id), text: localName(authority) })));
  $("queue-transfer-dialog").showModal();
  select.focus();
}

async function submitQueueTransfer(event) {
  event.preventDefault();
  const dialog = $("queue-transfer-dialog");
  const ticket = queueTransferTicket;
  dialog.close();
  queueTransferTicket = null;
  if (!ticket) return;
  try {
    await request(state.ctx.socket, "queue:transfer", {
      ticket_id: ticket.ticket_id,
      authority_id: Number($("queue-transfer-authority").value),
    });
    notify(t("console.call.transferred"));
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

async function takeNext() {
  const button = $("take-next");
  button.disabled = true;
  window.__etapalvelu.takeNextClickedAt = performance.now();
  try {
    const ack = await request(state.ctx.socket, "queue:take_next", {});
    await enterCall(ack.call);
  } catch (error) {
    notify(errorText(error), "warn");
    renderQueues();
  }
}

async function take(ticketId) {
  window.__etapalvelu.takeNextClickedAt = performance.now();
  try {
    const ack = await request(state.ctx.socket, "queue:take", { ticket_id: ticketId });
    await enterCall(ack.call);
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

// ---- call ----------------------------------------------------------------------------------

function callPanel() {
  if (!state.panel) {
    state.panel = new CallPanel({
      socket: state.ctx.socket,
      role: "expert",
      // A rejoin refused for good: the call ended meanwhile; flow:sync says what now.
      onRefused: () => resync(),
      tiles: { customer: $("tile-customer"), interpreter: $("tile-interpreter"),
               self: $("tile-self") },
      doccam: {
        viewport: $("doccam-viewport"), video: $("doccam-video"), output: $("zoom-level"),
        zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), zoomReset: $("zoom-reset"),
        still: $("take-still"),
      },
    });
  }
  return state.panel;
}

function renderCallInfo() {
  const call = state.call;
  if (!call) return;
  $("call-info").textContent = [
    t("console.call.customerAt", { office: call.office_name, language: languageName(call.language) }),
    t(`console.kind.${call.kind}`),
    t("console.call.waited", { wait: waitText(call.wait_seconds) }),
  ].join(" · ");
  const transfer = $("transfer-authority");
  const chosen = transfer.value;
  transfer.replaceChildren();
  for (const authority of state.allAuthorities.length ? state.allAuthorities : state.authorities) {
    if (authority.id === call.authority_id) continue;
    transfer.append(el("option", { value: String(authority.id), text: localName(authority) }));
  }
  if (chosen) transfer.value = chosen;
  // Nothing to transfer to (an expert of one authority, no list of the others): no button.
  const canTransfer = state.role === "expert" && transfer.options.length > 0;
  $("transfer-form").hidden = !canTransfer;
  $("open-transfer").hidden = !canTransfer;
  renderInterpreterStatus();
}

function renderInterpreterStatus() {
  const requests = (state.call && state.call.interpreter_requests) || [];
  const latest = requests[requests.length - 1];
  let text = "";
  if (latest && latest.status === "ringing") {
    text = t("console.call.interpreterRinging", { language: languageName(latest.language) });
  } else if (latest && latest.status === "accepted" && latest.accepted_by) {
    text = t("console.call.interpreterAccepted", { name: latest.accepted_by.name });
  }
  $("interpreter-status").textContent = text;
}

async function enterCall(call) {
  if (state.call && state.call.id === call.id && state.panel && state.panel.media) return;
  state.call = call;
  showView("call");
  state.controls.resetView();
  renderCallInfo();
  try {
    await callPanel().join(call);
    state.controls.resetLocal();
  } catch (error) {
    setStatus(errorText(error), "error");
  }
}

/** The words for a call that ended by itself (not by this expert's own button). */
function endedText(reason) {
  const key = `console.call.endedReason.${reason}`;
  const text = t(key);
  return text === key ? t("console.call.ended") : text;
}

function resync() {
  const ctx = state.ctx;
  return request(ctx.socket, "flow:sync", {})
    .then((ack) => onSync(ack, ctx, { rejoin: false }))
    .catch(() => {});
}

async function endCall() {
  if (!state.call) return;
  try {
    const ack = await request(state.ctx.socket, "call:end", { call_id: state.call.id });
    afterCall(ack.call);
  } catch (error) {
    if (error.reason === "call_ended") afterCall(state.call);
    else setStatus(errorText(error), "error");
  }
}

function afterCall(call) {
  if (state.panel) state.panel.close();
  state.controls.resetView();
  state.controls.resetLocal();
  state.call = null;
  $("interpreter-status").textContent = "";
  if (state.role === "clerk") return;
  if (!call.record_filed) openRecord(call);
  else showView("queues");
}

async function requestInterpreter(event) {
  event.preventDefault();
  const callId = state.call ? state.call.id : Number(event.target.dataset.callId);
  const language = state.call ? $("interpreter-language").value : event.target.elements.language.value;
  try {
    const ack = await request(state.ctx.socket, "interpreter:request", {
      call_id: callId, language,
    });
    if (state.call) {
      state.call.interpreter_requests = [...(state.call.interpreter_requests || []), ack.request];
      renderInterpreterStatus();
      state.controls.closePanels({ focus: true });
    }
    if (!ack.alerted) notify(t("console.call.interpreterNone"), "warn");
    else notify(t("console.call.interpreterRinging", { language: languageName(language) }));
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

async function transfer(event) {
  event.preventDefault();
  if (!state.call) return;
  try {
    await request(state.ctx.socket, "queue:transfer", {
      ticket_id: state.call.ticket_id,
      authority_id: Number($("transfer-authority").value),
    });
    state.controls.closePanels({ focus: true });
    notify(t("console.call.transferred"));
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

/** "Take still": the expert's own call, or (clerk) the office call of the row pressed. */
async function takeStill(event) {
  const button = event.currentTarget;
  const callId = state.call ? state.call.id : Number(button.dataset.callId);
  if (!callId) return;
  button.disabled = true;
  try {
    await request(state.ctx.socket, "document_camera:take_still", { call_id: callId });
    notify(t(state.role === "clerk" ? "console.clerk.stillRequested" : "console.call.stillRequested"));
  } catch (error) {
    notify(errorText(error), "warn");
  } finally {
    button.disabled = false;
  }
}

// ---- service record ------------------------------------------------------------------------

function openRecord(call) {
  state.recordCall = call;
  const authority = authorityById(call.authority_id);
  $("record-call").textContent = t("console.record.call", {
    id: call.id, office: call.office_name, started: formatDateTime(call.started_at),
  });
  const select = $("record-service-type");
  select.replaceChildren();
  for (const type of (authority && authority.service_types) || []) {
    select.append(el("option", { value: type.code, text: localName(type) }));
  }
  const outcomes = $("record-outcomes");
  outcomes.replaceChildren();
  OUTCOMES.forEach((outcome, index) => {
    const input = el("input", { type: "radio", name: "outcome", value: outcome,
                                id: `outcome-${outcome}` });
    if (index === 0) input.checked = true;
    outcomes.append(el("label", { for: `outcome-${outcome}` }, input,
                       t(`console.record.outcome.${outcome}`)));
  });
  $("record-error").hidden = true;
  showView("record");
}

async function fileRecord(event) {
  event.preventDefault();
  const call = state.recordCall;
  if (!call) return;
  const outcome = new FormData($("record-form")).get("outcome");
  const fields = { call_id: call.id, service_type: $("record-service-type").value, outcome };
  try {
    let ack;
    try {
      ack = await request(state.ctx.socket, "record:file", {
        ...fields, ...(await recordSignature(fields)),
      });
    } catch (error) {
      // Another browser of his may have registered its own key since: register this one
      // again and sign once more.
      if (error.local || !["bad_signature", "no_signing_key"].includes(error.reason)) throw error;
      state.signingKey = registerSigningKey(state.ctx);
      ack = await request(state.ctx.socket, "record:file", {
        ...fields, ...(await recordSignature(fields)),
      });
    }
    state.recordCall = null;
    state.unfiled = state.unfiled.filter((c) => c.id !== call.id);
    // The confirmation names the call, as the expert knows it (the log's sequence number
    // counts documents too and means nothing to him).
    notify(t("console.record.filed", {
      office: call.office_name, started: formatDateTime(call.started_at),
    }));
    if (state.unfiled.length) openRecord(state.unfiled[0]);
    else showView("queues");
  } catch (error) {
    const box = $("record-error");
    box.textContent = errorText(error);
    box.hidden = false;
  }
}

// Signs the record body exactly as the server will file it. The server files only records
// signed with the expert's registered key: without one (no Ed25519 in this browser's
// WebCrypto, or the registration failed) the record is not filed and the form says why.
async function recordSignature(fields) {
  const key = await registeredSigningKey();
  const draft = await request(state.ctx.socket, "record:draft", fields);
  return { signature: await signRecord(JSON.parse(draft.canonical), key.privateKey) };
}

/** This browser's registered signing key (the expert's records, the clerk's desk entries);
 * throws `no_signing_key` when there is none. */
async function registeredSigningKey() {
  let key = await state.signingKey;
  if (!key) {
    // Registration may have failed on a passing network error: try once more.
    state.signingKey = registerSigningKey(state.ctx);
    key = await state.signingKey;
  }
  if (!key) {
    const error = new Error("this browser has no registered signing key");
    error.reason = "no_signing_key";
    error.local = true;
    throw error;
  }
  return key;
}

function registerSigningKey(ctx) {
  return ensureSigningKeyRegistered(ctx.socket, ctx.user.id).catch((error) => {
    console.warn("no signing key: service records cannot be filed from this browser:", error);
    return null;
  });
}

// ---- history -------------------------------------------------------------------------------

async function loadHistory() {
  const container = $("history");
  try {
    const ack = await request(state.ctx.socket, "record:history", { limit: 50 });
    container.replaceChildren();
    if (!ack.entries.length) {
      container.append(el("p", { class: "empty", text: t("console.history.empty") }));
      return;
    }
    const table = el("table");
    const head = el("tr");
    for (const key of ["when", "office", "serviceType", "outcome", "duration"]) {
      head.append(el("th", { scope: "col", text: t(`console.history.${key}`) }));
    }
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const entry of ack.entries) {
      const b = entry.body || {};
      const authority = authorityById(b.authority_id);
      const type = authority && (authority.service_types || []).find((s) => s.code === b.service_type);
      body.append(el("tr", {},
        el("td", { text: formatDateTime(b.started_at || entry.filed_at) }),
        el("td", { text: b.office_name || "" }),
        el("td", { text: type ? localName(type) : b.service_type || "" }),
        el("td", { text: t(`console.record.outcome.${b.outcome}`) }),
        el("td", { text: clockText(b.duration_seconds || 0) }),
      ));
    }
    table.append(body);
    container.append(table);
  } catch (error) {
    container.replaceChildren(el("p", { class: "banner error", text: errorText(error) }));
  }
}

// ---- appointments --------------------------------------------------------------------------

function fillAppointmentForm() {
  const authoritySelect = $("appt-authority");
  const chosen = authoritySelect.value;
  authoritySelect.replaceChildren();
  for (const authority of state.authorities) {
    authoritySelect.append(el("option", { value: String(authority.id), text: localName(authority) }));
  }
  if (chosen) authoritySelect.value = chosen;
  const languageSelect = $("appt-language");
  const lang = languageSelect.value;
  languageSelect.replaceChildren();
  for (const code of SERVICE_LANGUAGES) {
    languageSelect.append(el("option", { value: code, text: languageName(code) }));
  }
  if (lang) languageSelect.value = lang;
  fillServiceTypes();
  const time = $("appt-time");
  if (!time.value) {
    const soon = new Date(Date.now() + 60 * 60 * 1000);
    soon.setMinutes(soon.getMinutes() < 30 ? 30 : 60, 0, 0);
    const local = new Date(soon.getTime() - soon.getTimezoneOffset() * 60000);
    time.value = local.toISOString().slice(0, 16);
  }
}

function fillServiceTypes() {
  const authority = authorityById(Number($("appt-authority").value));
  const select = $("appt-service-type");
  select.replaceChildren();
  for (const type of (authority && authority.service_types) || []) {
    select.append(el("option", { value: type.code, text: localName(type) }));
  }
}

async function bookAppointment(event) {
  event.preventDefault();
  const result = $("appointment-result");
  try {
    const ack = await request(state.ctx.socket, "appointment:book", {
      authority_id: Number($("appt-authority").value),
      office_id: Number($("appt-office").value),
      starts_at: new Date($("appt-time").value).toISOString(),
      language: $("appt-language").value,
      service_type: $("appt-service-type").value,
    });
    result.className = "banner info";
    result.textContent = t("console.appointments.booked", { code: ack.appointment.code });
    result.dataset.code = ack.appointment.code;
    result.hidden = false;
    loadAppointments();
  } catch (error) {
    result.className = "banner error";
    result.textContent = errorText(error);
    result.hidden = false;
  }
}

async function loadAppointments() {
  fillAppointmentForm();
  const container = $("appointment-list");
  try {
    const ack = await request(state.ctx.socket, "appointment:list", {});
    state.appointments = ack.appointments;
    renderAppointments();
  } catch (error) {
    container.replaceChildren(el("p", { class: "banner error", text: errorText(error) }));
  }
}

function renderAppointments() {
  const container = $("appointment-list");
  container.replaceChildren();
  if (!state.appointments.length) {
    container.append(el("p", { class: "empty", text: t("console.appointments.none") }));
    return;
  }
  const table = el("table");
  const head = el("tr");
  for (const key of ["startsAt", "authority", "office", "language", "code", "status"]) {
    head.append(el("th", { scope: "col", text: t(`console.appointments.${key}`) }));
  }
  head.append(el("th", { scope: "col" }, el("span", { class: "visually-hidden",
                                                      text: t("console.appointments.cancel") })));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const a of state.appointments) {
    const authority = authorityById(a.authority_id);
    const cancel = a.status === "booked"
      ? el("button", { type: "button", class: "secondary", text: t("console.appointments.cancel"),
                       onclick: () => cancelAppointment(a.id) })
      : "";
    body.append(el("tr", {},
      el("td", { text: formatDateTime(a.starts_at) }),
      el("td", { text: authority ? localName(authority) : a.authority_code }),
      el("td", { text: a.office_name }),
      el("td", { text: languageName(a.language) }),
      el("td", { class: "num", text: a.code }),
      el("td", { text: t(`console.status.${a.status}`) }),
      el("td", {}, cancel),
    ));
  }
  table.append(body);
  container.append(table);
}

async function cancelAppointment(id) {
  try {
    await request(state.ctx.socket, "appointment:cancel", { appointment_id: id });
    loadAppointments();
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

// ---- clerk ---------------------------------------------------------------------------------

function renderClerk() {
  const alerts = $("secretary-alerts");
  alerts.replaceChildren();
  const open = state.secretaryAlerts.filter((a) => !a.acknowledged_at);
  if (!open.length) alerts.append(el("li", { class: "empty", text: t("console.clerk.noAlerts") }));
  for (const alert of open) {
    alerts.append(el("li", { class: "ringing", "data-alert": String(alert.id) },
      el("span", { class: "who", text: t("console.clerk.alert", {
        endpoint: alert.endpoint_name, time: formatDateTime(alert.raised_at) }) }),
      el("button", { type: "button", text: t("console.clerk.acknowledge"),
                     onclick: () => acknowledge(alert.id) })));
  }
  const calls = $("office-calls");
  // The list is drawn again on every re-read (every 10 s): keep the clerk's chosen languages
  // and his keyboard focus where they were.
  const chosen = new Map([...calls.querySelectorAll("select")].map((s) => [s.id, s.value]));
  const focused = document.activeElement && calls.contains(document.activeElement)
    ? focusKey(document.activeElement) : null;
  calls.replaceChildren();
  const active = state.officeCalls.filter((c) => c.status === "active");
  if (!active.length) calls.append(el("li", { class: "empty", text: t("console.clerk.noCalls") }));
  for (const call of active) {
    const select = el("select", { name: "language", id: `clerk-lang-${call.id}` });
    for (const code of INTERPRETING_LANGUAGES) {
      select.append(el("option", { value: code, text: languageName(code) }));
    }
    if (chosen.has(select.id)) select.value = chosen.get(select.id);
    const form = el("form", { class: "inline-form", "data-call-id": String(call.id),
                              onsubmit: requestInterpreter },
      el("label", { for: `clerk-lang-${call.id}`, text: t("console.call.interpreterLanguage") }),
      select,
      el("button", { type: "submit", class: "secondary", text: t("console.call.requestInterpreter") }));
    // The office's document camera in this call: the clerk lays the page under it and takes
    // the still himself; it goes into the call's documents like any document.
    const camera = (call.participants || []).find(
      (p) => p.role === "document_camera" && p.connected && !p.left);
    const still = el("button", {
      type: "button", class: "take-still-row", "data-call-id": String(call.id),
      text: t("console.call.takeStill"),
      "aria-label": t("console.clerk.takeStillLabel", {
        authority: authorityLabel(call.authority_id, call.authority_code) }),
      onclick: takeStill,
    });
    still.disabled = !camera;
    const label = authorityLabel(call.authority_id, call.authority_code);
    const showing = state.preview && state.preview.callId === call.id;
    const look = el("button", {
      type: "button", class: "preview-row secondary", "data-call-id": String(call.id),
      text: t("console.clerk.preview"), "aria-label": t("console.clerk.previewLabel", { authority: label }),
      "aria-pressed": String(Boolean(showing)),
      onclick: () => (showing ? closePreview() : openPreview(call.id)),
    });
    look.disabled = !camera && !showing;
    const chatting = Boolean(clerkChat && clerkChat.isOpen(call.id));
    const talk = el("button", {
      type: "button", class: "chat-row secondary", "data-call-id": String(call.id),
      text: t("console.clerk.chat"), "aria-label": t("console.clerk.chatLabel", { authority: label }),
      "aria-pressed": String(chatting),
      onclick: () => (chatting ? clerkChat.close() : clerkChat.open(call.id, label)).then(renderClerk)
        .catch((error) => notify(errorText(error), "warn")),
    });
    calls.append(el("li", { class: "clerk-call", "data-call": String(call.id) },
      el("span", { class: "who", text: t("console.clerk.callRow", {
        authority: authorityLabel(call.authority_id, call.authority_code),
        expert: call.expert_name || "", started: formatDateTime(call.started_at) }) }),
      el("div", { class: "call-tools" },
        el("span", { class: "doccam-state", "data-doccam": camera ? "on" : "off",
                     text: t(camera ? "console.clerk.doccamOn" : "console.clerk.doccamOff") }),
        look, still, talk, state.stitcher.rowControls(call, camera)),
      state.doccamNotices.has(call.id) ? el("p", {
        class: "doccam-notice warn", role: "status",
        "data-code": state.doccamNotices.get(call.id).code,
        text: localName({ name: state.doccamNotices.get(call.id).text }),
        title: state.doccamNotices.get(call.id).detail }) : "",
      form));
  }
  if (focused) calls.querySelector(focused)?.focus({ preventScroll: true });
  renderPreview(active);
  if (clerkChat) clerkChat.prune(active.map((c) => c.id));
}

// ---- the clerk's desk entries (signaling/records/desk_services.py) ---------------------------------

async function loadDesk() {
  try {
    const ack = await request(state.ctx.socket, "desk:services", {});
    state.desk = { services: ack.services, authorities: ack.authorities, entries: [] };
    renderDeskForm();
    await loadDeskHistory();
  } catch (error) {
    state.desk = null;
    notify(errorText(error), "warn");
  }
}

/** The form's choices in the UI language, keeping what the clerk had chosen. */
function renderDeskForm() {
  if (!state.desk) return;
  for (const [id, items, value] of [
    ["desk-authority", state.desk.authorities, (a) => String(a.id)],
    ["desk-service", state.desk.services, (s) => s.code],
  ]) {
    const select = $(id);
    const chosen = select.value;
    select.replaceChildren(...items.map((item) => el("option", {
      value: value(item), text: localName(item) })));
    if (chosen) select.value = chosen;
  }
}

async function loadDeskHistory() {
  const ack = await request(state.ctx.socket, "desk:history", { limit: 10 });
  state.desk.entries = ack.entries;
  renderDeskHistory();
}

function renderDeskHistory() {
  if (!state.desk) return;
  const list = $("desk-history");
  const names = (items, key, code) => {
    const found = items.find((item) => item[key] === code);
    return found ? localName(found) : String(code);
  };
  list.replaceChildren(...(state.desk.entries.length ? state.desk.entries.map((entry) =>
    el("li", { "data-seq": String(entry.seq), text: t("console.desk.row", {
      time: formatDateTime(entry.body.served_at),
      service: names(state.desk.services, "code", entry.body.desk_service),
      authority: names(state.desk.authorities, "id", entry.body.authority_id),
      seq: entry.seq,
    }) })) : [el("li", { class: "empty", text: t("console.desk.none") })]));
}

/** Draft, sign with this browser's registered key, file (re-registering once if another
 * browser of his registered a key since, as for the expert's records). */
async function fileDesk(event) {
  event.preventDefault();
  const box = $("desk-error");
  box.hidden = true;
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  const fields = { authority_id: Number($("desk-authority").value),
                   desk_service: $("desk-service").value };
  const signed = async () => {
    const key = await registeredSigningKey();
    const draft = await request(state.ctx.socket, "desk:draft", fields);
    const signature = await signRecord(JSON.parse(draft.canonical), key.privateKey);
    return request(state.ctx.socket, "desk:file", {
      ...fields, served_at: draft.body.served_at, signature });
  };
  try {
    let ack;
    try {
      ack = await signed();
    } catch (error) {
      if (error.local || !["bad_signature", "no_signing_key"].includes(error.reason)) throw error;
      state.signingKey = registerSigningKey(state.ctx);
      ack = await signed();
    }
    const body = ack.entry.body;
    notify(t("console.desk.filed", {
      service: localName(state.desk.services.find((s) => s.code === body.desk_service)),
      authority: localName(state.desk.authorities.find((a) => a.id === body.authority_id)),
      seq: ack.entry.seq,
    }));
    await loadDeskHistory();
  } catch (error) {
    box.textContent = errorText(error);
    box.hidden = false;
  } finally {
    button.disabled = false;
  }
}

// ---- the clerk's preview of the document camera --------------------------------------------

/** Open the live picture of the office's document camera in this call (receive only). */
async function openPreview(callId) {
  await closePreview();
  const preview = new DocCamPreview(state.ctx.socket, callId, $("clerk-preview-video"), {
    onState: (value) => {
      if (state.preview && state.preview.preview === preview) {
        state.preview.state = value;
        renderPreview();
      }
    },
  });
  state.preview = { callId, preview, state: "waiting" };
  renderClerk();
  $("clerk-preview").scrollIntoView({ block: "nearest" });
  try {
    await preview.start();
  } catch (error) {
    notify(errorText(error), "warn");
    if (state.preview && state.preview.preview === preview) await closePreview();
  }
}

async function closePreview() {
  const current = state.preview;
  state.preview = null;
  $("clerk-preview").hidden = true;
  if (current) {
    await current.preview.stop();
    renderClerk();
  }
}

/** The preview box: its call's name, what it shows; closed when its call has ended. */
function renderPreview(active = state.officeCalls.filter((c) => c.status === "active")) {
  const current = state.preview;
  const box = $("clerk-preview");
  if (!current) {
    box.hidden = true;
    return;
  }
  const call = active.find((c) => c.id === current.callId);
  if (!call) {
    closePreview();
    return;
  }
  box.hidden = false;
  $("clerk-preview-title").textContent = t("console.clerk.previewTitle", {
    authority: authorityLabel(call.authority_id, call.authority_code) });
  const stateLabel = $("clerk-preview-state");
  stateLabel.dataset.state = current.state;
  stateLabel.textContent = t(`console.clerk.preview.${current.state}`);
  $("clerk-preview-still").dataset.callId = String(call.id);
}

/** A selector that finds the same control in a redrawn office-calls list. */
function focusKey(element) {
  const row = element.closest("li[data-call]");
  if (!row) return null;
  const inRow = element.id ? `#${CSS.escape(element.id)}`
    : element.classList.length ? `.${CSS.escape(element.classList[0])}` : element.tagName.toLowerCase();
  return `li[data-call="${row.dataset.call}"] ${inRow}`;
}

async function acknowledge(alertId) {
  try {
    const ack = await request(state.ctx.socket, "secretary:acknowledge", { alert_id: alertId });
    upsertAlert(ack.alert);
  } catch (error) {
    notify(errorText(error), "warn");
  }
}

function upsertAlert(alert) {
  state.secretaryAlerts = [...state.secretaryAlerts.filter((a) => a.id !== alert.id), alert];
  renderClerk();
}

// ---- wiring --------------------------------------------------------------------------------

/** After every (re)connect (`rejoin`: a call still on is joined again; the server dropped
 * the old socket's relay session), and when a rejoin was refused. */
async function onSync(ack, ctx, { rejoin = true } = {}) {
  state.ctx = ctx;
  state.role = ctx.user.role;
  state.authorities = ack.authorities || [];
  if (state.role === "clerk") {
    state.secretaryAlerts = ack.secretary_alerts || [];
    state.officeCalls = ack.calls || [];
    state.queues.clear();
    setQueues(ack.queues || []);
    showView("clerk", { focus: false });
    renderClerk();
    if (!state.desk) loadDesk();
    // The secretary's booking box (clerk-booking.js, issue 17).
    if (!state.clerkBooking) {
      state.clerkBooking = mountClerkBooking($("clerk-booking-slot"), () => state.ctx.socket);
      state.clerkBooking.load().catch(() => {});
    }
    return;
  }
  state.allAuthorities = ack.all_authorities || [];
  // The appointments form may have been opened before the first sync brought the
  // authorities: fill it now, or its authority list stays empty.
  if (state.view === "appointments") fillAppointmentForm();
  state.queues.clear();
  setQueues(ack.queues || []);
  state.unfiled = ack.unfiled_calls || [];
  if (ack.call && ack.call.status === "active") {
    if (state.call && state.call.id === ack.call.id && state.panel && state.panel.media) {
      // Still in the call after a reconnect: the view, the documents and the camera stay.
      state.call = { ...state.call, ...ack.call };
      renderCallInfo();
      state.panel.setParticipants(ack.call.participants || []);
      if (state.view !== "call") showView("call", { focus: false });
      if (rejoin) state.panel.rejoin("socket_reconnect");
    } else {
      await enterCall(ack.call);
    }
  } else if (state.call) {
    afterCall({ ...state.call, record_filed: false });
  } else if (state.unfiled.length && state.view !== "record") {
    openRecord(state.unfiled[0]);
  } else if (!["record", "appointments", "history"].includes(state.view)) {
    showView("queues", { focus: false });
  }
  // The camera warms up while the expert looks at the queue, so taking a customer is quick.
  if (!state.call) callPanel().prepareCamera();
}

function onSession(ctx) {
  state.ctx = ctx;
  const socket = ctx.socket;
  // The clerk signs his desk entries with a key of his own, as the expert signs records.
  if (["expert", "clerk"].includes(ctx.user.role)) state.signingKey = registerSigningKey(ctx);
  // Customers at home waiting for him (issue 18): admitting one starts the call (call:started).
  if (ctx.user.role === "expert") mountRemoteCustomers(socket, { notify, errorText });
  socket.on("queue:update", ({ authority_id: authorityId, queues }) => {
    if (state.role === "clerk") {
      // The push is not filtered for a clerk; re-read his office's lines and calls (a ticket
      // taken is also a call started at his office).
      request(socket, "flow:sync", {}).then((ack) => onSync(ack, ctx)).catch(() => {});
      return;
    }
    replaceAuthorityQueues(authorityId, queues);
  });
  socket.on("call:started", ({ call }) => {
    if (state.role === "expert" && call.expert_id === ctx.user.id) enterCall(call);
    if (state.role === "clerk") {
      state.officeCalls = [...state.officeCalls.filter((c) => c.id !== call.id), call];
      renderClerk();
    }
  });
  // The office's document camera says what it cannot do (e.g. its resolution is too low for
  // the office's documents): shown on the call's row (signaling/in_call/document_camera_notices.py).
  socket.on("document_camera:notice", (notice) => {
    state.doccamNotices.set(notice.call_id, notice);
    if (state.role === "clerk") renderClerk();
  });
  state.stitcher.attach(socket); // the large sheet's progress (doccam-stitch.js)
  socket.on("call:ended", ({ call_id: callId, call, reason }) => {
    state.doccamNotices.delete(callId);
    state.stitcher.callEnded(callId);
    if (state.call && state.call.id === callId) {
      notify(endedText(reason), reason === "ended" ? "info" : "warn");
      afterCall(call || state.call);
    }
    state.officeCalls = state.officeCalls.filter((c) => c.id !== callId);
    if (state.role === "clerk") renderClerk();
  });
  socket.on("call:participants", ({ call_id: callId, participants }) => {
    if (state.call && state.call.id === callId && state.panel) {
      state.call.participants = participants;
      state.panel.setParticipants(participants);
    }
  });
  // The trend lines move on with time even when no push comes.
  setInterval(() => { if (state.role === "expert") recordTrends(); }, 30000);
  socket.on("interpreter:update", ({ request: req, alerted }) => {
    if (!state.call || state.call.id !== req.call_id) return;
    const others = (state.call.interpreter_requests || []).filter((r) => r.id !== req.id);
    state.call.interpreter_requests = [...others, req];
    renderInterpreterStatus();
    // The last interpreter the ring reached was lost with his signaling process: the ring
    // is still open, but nobody hears it — say so, as when nobody was reached at first.
    if (alerted === 0 && req.status === "ringing") notify(t("console.call.interpreterNone"), "warn");
  });
  socket.on("appointment:update", () => {
    if (state.view === "appointments") loadAppointments();
  });
  socket.on("secretary:alert", ({ alert }) => upsertAlert(alert));
  socket.on("secretary:acknowledged", ({ alert }) => upsertAlert(alert));
  socket.on("call:replaced", ({ call_id: callId }) => {
    if (state.call && state.call.id === callId && state.panel) state.panel.close();
  });
  if (ctx.user.role === "clerk") {
    clerkChat = new ClerkChat(socket, { box: $("clerk-chat"), mount: $("clerk-chat-mount"),
                                        title: $("clerk-chat-title") });
    $("clerk-chat-close").addEventListener("click", () => clerkChat.close().then(renderClerk));
    kioskHealth = new KioskHealth(socket, $("kiosk-health-list"));
    window.__etapalvelu.kioskHealth = kioskHealth;
    $("console-title").dataset.i18n = "console.title.clerk";
    $("console-title").textContent = t("console.title.clerk");
    // Office calls have no push for clerks: re-read them now and then.
    setInterval(() => {
      if (socket.connected) request(socket, "flow:sync", {}).then((ack) => onSync(ack, ctx))
        .catch(() => {});
    }, 10000);
  }
}

function init() {
  const select = $("interpreter-language");
  const fillLanguages = () => {
    const chosen = select.value;
    select.replaceChildren();
    for (const code of INTERPRETING_LANGUAGES) {
      select.append(el("option", { value: code, text: languageName(code) }));
    }
    if (chosen) select.value = chosen;
  };
  fillLanguages();
  $("take-next").addEventListener("click", takeNext);
  $("end-call").addEventListener("click", endCall);
  $("interpreter-form").addEventListener("submit", requestInterpreter);
  $("transfer-form").addEventListener("submit", transfer);
  $("queue-transfer-form").addEventListener("submit", submitQueueTransfer);
  $("queue-transfer-cancel").addEventListener("click", () => {
    queueTransferTicket = null;
    $("queue-transfer-dialog").close();
  });
  $("take-still").addEventListener("click", takeStill);
  $("clerk-preview-still").addEventListener("click", takeStill);
  $("clerk-preview-close").addEventListener("click", () => closePreview());
  state.stitcher = new SheetStitcher($("clerk-stitch"), {
    authorityOf: (call) => authorityLabel(call.authority_id, call.authority_code),
    onBusy: () => { if (state.role === "clerk") renderClerk(); } });
  watchStitchedSheets(document.body); // the expert's documents: stitched sheets zoom
  state.controls = new CallControls({ panel: () => state.panel });
  $("record-form").addEventListener("submit", fileRecord);
  $("desk-form").addEventListener("submit", fileDesk);
  $("appointment-form").addEventListener("submit", bookAppointment);
  $("appt-authority").addEventListener("change", fillServiceTypes);
  for (const b of document.querySelectorAll(".console-nav [data-view]")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }
  onLanguageChange(() => {
    fillLanguages();
    renderQueues();
    renderTrends();
    renderCallInfo();
    if (state.recordCall) openRecord(state.recordCall);
    if (state.view === "appointments") { fillAppointmentForm(); renderAppointments(); }
    if (state.view === "history") loadHistory();
    if (state.role === "clerk") {
      renderClerk();
      state.stitcher.render();
      renderDeskForm();
      renderDeskHistory();
    }
  });
  // Waiting times tick on between pushes (in place, so keyboard focus stays where it is).
  setInterval(() => {
    const elapsed = (Date.now() - state.queuesAt) / 1000;
    for (const cell of document.querySelectorAll(".queue-table td.wait")) {
      cell.textContent = clockText(Number(cell.dataset.base) + elapsed);
    }
  }, 1000);
  startConsole({ roles: ["expert", "clerk"], onSession, onSync });
}

init();
