// The interpreter console: alerts of the interpreting ring, accept, the call, leave.
// A sign-language interpreter's camera is tuned for motion (call-media.js): frame rate is
// kept and resolution gives way when bandwidth runs short.

import {
  formatDateTime, languageName, localName, onLanguageChange, t,
} from "/static/common/js/i18n.js";
import { $, clearNotice, errorText, notify, setStatus, startConsole } from "./console-app.js";
import { CallPanel } from "./call-panel.js";
import { CallControls } from "./call-controls.js";
import { request } from "./session.js";
import { el } from "/static/common/js/dom.js";
import { mountReservations } from "./interpreter-reservations.js";

const state = {
  ctx: null, alerts: [], authorities: [], call: null, request: null, panel: null, controls: null,
  accepting: null, // the request this tab is accepting (it enters the call; the others drop it)
};
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.interpreter = state;

/** An authority's name in the UI language (flow:sync lists them), else its code. */
function authorityName(code) {
  const authority = state.authorities.find((a) => a.code === code);
  if (authority) return localName(authority);
  return code ? code.charAt(0).toUpperCase() + code.slice(1) : "";
}

function renderAlerts() {
  const list = $("alerts");
  list.replaceChildren();
  const ringing = state.alerts.filter((a) => a.status === "ringing");
  if (!ringing.length) list.append(el("li", { class: "empty", text: t("console.alerts.empty") }));
  for (const alert of ringing) {
    const text = t("console.alerts.request", {
      authority: authorityName(alert.authority_code), office: alert.office_name,
      language: languageName(alert.language),
    });
    list.append(el("li", { class: "ringing", "data-request": String(alert.id) },
      el("span", {},
         el("span", { class: "who", text }), " ",
         el("span", { text: formatDateTime(alert.requested_at) })),
      el("span", { class: "actions" },
         el("button", { type: "button", text: t("console.alerts.accept"),
                        "aria-label": `${t("console.alerts.accept")}: ${text}`,
                        onclick: () => accept(alert) }),
         " ",
         el("button", { type: "button", class: "secondary", text: t("console.alerts.decline"),
                        onclick: () => decline(alert) }))));
  }
}

function showCall(inCall) {
  $("view-alerts").hidden = inCall;
  $("view-call").hidden = !inCall;
  document.body.classList.toggle("in-call", inCall);
  const heading = inCall ? $("call-title") : $("alerts-title");
  heading.tabIndex = -1;
  heading.focus({ preventScroll: true });
}

async function accept(alert) {
  state.accepting = alert.id;
  try {
    const ack = await request(state.ctx.socket, "interpreter:accept", { request_id: alert.id });
    state.alerts = state.alerts.filter((a) => a.id !== alert.id);
    renderAlerts();
    // The "new request" message has been answered: it goes with the request.
    clearNotice("alert");
    await enterCall(ack.call, ack.request);
  } catch (error) {
    state.alerts = state.alerts.filter((a) => a.id !== alert.id);
    renderAlerts();
    notify(error.reason === "taken" ? t("console.alerts.taken") : errorText(error), "warn");
  } finally {
    state.accepting = null;
  }
}

async function decline(alert) {
  state.alerts = state.alerts.filter((a) => a.id !== alert.id);
  renderAlerts();
  if (!state.alerts.some((a) => a.status === "ringing")) clearNotice("alert");
  try {
    await request(state.ctx.socket, "interpreter:decline", { request_id: alert.id });
  } catch {
    /* it is hidden here either way */
  }
}

async function enterCall(call, req) {
  if (state.call && state.call.id === call.id && state.panel && state.panel.media) return;
  state.call = call;
  const signLanguage = Boolean(
    (req && req.sign_language) ||
    (call.participants || []).some((p) => p.id === state.ctx.user.id && p.sign_language),
  );
  if (state.panel && state.panel.signLanguage !== signLanguage) {
    state.panel.close({ keepCamera: false });
    state.panel = null;
  }
  if (!state.panel) {
    state.panel = new CallPanel({
      socket: state.ctx.socket, role: "interpreter", signLanguage,
      // A rejoin refused for good (the call ended, or he left it): flow:sync says what now.
      onRefused: () => request(state.ctx.socket, "flow:sync", {})
        .then((ack) => onSync(ack, state.ctx, { rejoin: false })).catch(() => {}),
      tiles: { customer: $("tile-customer"), expert: $("tile-expert"), self: $("tile-self") },
      doccam: {
        viewport: $("doccam-viewport"), video: $("doccam-video"), output: $("zoom-level"),
        zoomIn: $("zoom-in"), zoomOut: $("zoom-out"), zoomReset: $("zoom-reset"),
      },
    });
  }
  state.request = req || state.request;
  renderCallInfo();
  showCall(true);
  state.controls.resetView();
  try {
    await state.panel.join(call);
    state.controls.resetLocal();
  } catch (error) {
    setStatus(errorText(error), "error");
  }
}

/** The call's authority, office and language, in the UI language (again after a switch). */
function renderCallInfo() {
  const call = state.call;
  if (!call) return;
  const req = state.request && state.request.call_id === call.id ? state.request : null;
  $("call-info").textContent = `${authorityName(call.authority_code)} · ${call.office_name} · ` +
    languageName((req && req.language) || call.language);
}

function leftCall() {
  state.controls.resetView();
  if (state.panel) state.panel.close({ keepCamera: false });
  state.panel = null;
  state.call = null;
  state.request = null;
  showCall(false);
}

async function leave() {
  if (!state.call) return leftCall();
  try {
    await request(state.ctx.socket, "call:leave", { call_id: state.call.id });
  } catch {
    /* ended meanwhile: leaving is done either way */
  }
  leftCall();
}

/** After every (re)connect (`rejoin`: a call still on is joined again; the server dropped
 * the old socket's relay session), and when a rejoin was refused. */
async function onSync(ack, ctx, { rejoin = true } = {}) {
  state.ctx = ctx;
  state.alerts = ack.alerts || [];
  state.authorities = ack.authorities || [];
  renderAlerts();
  reservations.load();
  if (ack.call && ack.call.status === "active") {
    if (state.call && state.call.id === ack.call.id && state.panel && state.panel.media) {
      state.call = ack.call;
      state.panel.setParticipants(ack.call.participants || []);
      if (rejoin) state.panel.rejoin("socket_reconnect");
    } else {
      await enterCall(ack.call, null);
    }
  } else if (state.call) {
    leftCall();
  }
}

function onSession(ctx) {
  state.ctx = ctx;
  const socket = ctx.socket;
  socket.on("interpreter:alert", ({ request: req }) => {
    state.alerts = [...state.alerts.filter((a) => a.id !== req.id), req];
    renderAlerts();
    notify(t("console.alerts.new", { language: languageName(req.language) }), "warn",
           { tag: "alert" });
  });
  socket.on("interpreter:reservations_changed", () => reservations.load());
  const dropAlert = (id) => {
    state.alerts = state.alerts.filter((a) => a.id !== id);
    renderAlerts();
    if (!state.alerts.some((a) => a.status === "ringing")) clearNotice("alert");
  };
  socket.on("interpreter:withdrawn", ({ request_id: id }) => dropAlert(id));
  // He took it in another tab or on another device: gone quietly, no "someone else took it".
  socket.on("interpreter:accepted_elsewhere", ({ request_id: id }) => {
    if (state.accepting !== id) dropAlert(id);
  });
  socket.on("call:participants", ({ call_id: callId, participants }) => {
    if (state.call && state.call.id === callId && state.panel) {
      state.panel.setParticipants(participants);
    }
  });
  socket.on("call:ended", ({ call_id: callId, reason }) => {
    if (state.call && state.call.id === callId) {
      const key = `console.call.endedReason.${reason}`;
      notify(t(key) === key ? t("console.call.ended") : t(key));
      leftCall();
    }
  });
  socket.on("call:replaced", ({ call_id: callId }) => {
    if (state.call && state.call.id === callId && state.panel) state.panel.close();
  });
}

// His booked reservations (issue 17), under the alerts.
const reservations = mountReservations($("reservations"), () => state.ctx.socket);
$("leave-call").addEventListener("click", leave);
state.controls = new CallControls({ panel: () => state.panel });
onLanguageChange(() => {
  renderAlerts();
  renderCallInfo();
});
startConsole({ roles: ["interpreter"], onSession, onSync });
