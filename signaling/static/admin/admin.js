// The administrator's pages: live calls and queues, statistics with the CSV export for cost
// compensation, and the directory (offices, kiosk devices, users) through the REST API.

import {
  addStrings, clockText, formatDateTime, languageName, localName, onLanguageChange, t,
} from "/static/common/js/i18n.js";
import { $, errorText, notify, selectView, startConsole } from "/static/console/js/console-app.js";
import { api } from "/static/console/js/session.js";
import { ADMIN_STRINGS } from "./strings.js";
import { el } from "/static/common/js/dom.js";

addStrings(ADMIN_STRINGS);

const state = {
  ctx: null, view: "live", authorities: [], offices: [], endpoints: [], users: [],
  live: { calls: [], queues: [] }, stats: null, liveTimer: null,
};
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.admin = state;

/** A table from column specs [{key (i18n), value(row), numeric?}] and rows. */
function table(columns, rows) {
  const head = el("tr");
  for (const c of columns) {
    head.append(el("th", { scope: "col", class: c.numeric ? "numeric" : "",
                           text: c.key ? t(c.key) : "" }));
  }
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) {
      const value = c.value(row);
      const td = el("td", { class: c.numeric ? "numeric" : "" });
      if (value instanceof Node) td.append(value);
      else td.textContent = value == null ? "" : String(value);
      tr.append(td);
    }
    body.append(tr);
  }
  return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), body));
}

function showView(name) {
  state.view = name;
  selectView(name);
  clearInterval(state.liveTimer);
  if (name === "live") {
    loadLive();
    state.liveTimer = setInterval(loadLive, 5000);
  }
  if (name === "stats") loadStats();
  if (["offices", "endpoints", "users"].includes(name)) loadDirectory();
}

const authorityName = (id, code) => {
  const a = state.authorities.find((x) => x.id === id || x.code === code);
  return a ? localName(a) : code || "";
};

// ---- live ----------------------------------------------------------------------------------

async function loadLive() {
  try {
    state.live = await api("/api/live");
  } catch {
    /* keep what flow:sync gave */
  }
  renderLive();
}

function renderLive() {
  const calls = $("live-calls");
  const active = (state.live.calls || []).filter((c) => c.status === "active");
  calls.replaceChildren(active.length
    ? table([
      { key: "admin.col.authority", value: (c) => authorityName(c.authority_id, c.authority_code) },
      { key: "admin.col.office", value: (c) => c.office_name },
      { key: "admin.col.expert", value: (c) => c.expert_name },
      { key: "admin.col.language", value: (c) => languageName(c.language) },
      { key: "admin.col.started", value: (c) => formatDateTime(c.started_at) },
      { key: "admin.col.participants",
        value: (c) => (c.participants || []).filter((p) => !p.left).map((p) => p.name).join(", ") },
    ], active)
    : el("p", { class: "empty", text: t("admin.live.noCalls") }));
  const queues = (state.live.queues || []).filter((q) => q.tickets && q.tickets.length);
  $("live-queues").replaceChildren(queues.length
    ? table([
      { key: "admin.col.authority", value: (q) => authorityName(q.authority_id, q.authority_code) },
      { key: "admin.col.language", value: (q) => languageName(q.language) },
      { key: "admin.col.waiting", numeric: true, value: (q) => q.tickets.length },
      { key: "admin.col.longest", numeric: true,
        value: (q) => clockText(Math.max(...q.tickets.map((x) => x.waiting_seconds || 0))) },
    ], queues)
    : el("p", { class: "empty", text: t("admin.live.noQueues") }));
}

// ---- statistics ----------------------------------------------------------------------------

function statsQuery() {
  const params = new URLSearchParams();
  if ($("stats-from").value) params.set("from", $("stats-from").value);
  if ($("stats-to").value) params.set("to", $("stats-to").value);
  return params;
}

async function loadStats(event) {
  if (event) event.preventDefault();
  const params = statsQuery();
  params.set("by", $("stats-by").value);
  try {
    state.stats = await api(`/api/stats?${params}`);
    renderStats();
  } catch (error) {
    $("stats-table").replaceChildren(el("p", { class: "banner error", text: errorText(error) }));
  }
}

function renderStats() {
  const data = state.stats;
  if (!data) return;
  const container = $("stats-table");
  if (!data.rows.length) {
    container.replaceChildren(el("p", { class: "empty", text: t("admin.stats.none") }));
    return;
  }
  const first = {
    authority: { key: "admin.col.authority",
                 value: (r) => authorityName(r.authority_id, r.authority_code) },
    office: { key: "admin.col.office", value: (r) => r.office_name },
    month: { key: "admin.col.month", value: (r) => r.month },
  }[data.by];
  const minutes = (s) => (s == null ? "" : (s / 60).toFixed(1));
  container.replaceChildren(table([
    first,
    { key: "admin.col.services", numeric: true, value: (r) => r.services },
    { key: "admin.col.walkIns", numeric: true, value: (r) => r.walk_ins },
    { key: "admin.col.appointments", numeric: true, value: (r) => r.appointments },
    { key: "admin.col.interpreted", numeric: true, value: (r) => r.interpreted },
    { key: "admin.col.documents", numeric: true, value: (r) => r.documents },
    { key: "admin.col.totalMinutes", numeric: true, value: (r) => minutes(r.total_duration_seconds) },
    { key: "admin.col.meanWait", numeric: true, value: (r) => clockText(r.mean_wait_seconds || 0) },
    { key: "admin.col.meanDuration", numeric: true,
      value: (r) => clockText(r.mean_duration_seconds || 0) },
  ], data.rows));
}

async function exportCsv() {
  try {
    const response = await api(`/api/stats/compensation.csv?${statsQuery()}`, { raw: true });
    const blob = await response.blob();
    const link = el("a", { href: URL.createObjectURL(blob),
                           download: "etapalvelu-compensation.csv" });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

// ---- directory -----------------------------------------------------------------------------

async function loadDirectory() {
  try {
    const [offices, endpoints, users, authorities] = await Promise.all([
      api("/api/admin/offices"), api("/api/admin/endpoints"), api("/api/admin/users"),
      api("/api/admin/authorities"),
    ]);
    state.offices = offices.items;
    state.endpoints = endpoints.items;
    state.users = users.items;
    state.authorities = authorities.items;
    renderDirectory();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function toggle(kind, item) {
  const action = item.enabled ? "disable" : "enable";
  return el("button", {
    type: "button", class: "secondary",
    text: t(item.enabled ? "admin.disable" : "admin.enable"),
    "aria-label": `${t(item.enabled ? "admin.disable" : "admin.enable")}: ${item.name || item.username}`,
    onclick: async () => {
      try {
        await api(`/api/admin/${kind}/${item.id}/${action}`, { method: "POST", body: {} });
        loadDirectory();
      } catch (error) {
        notify(errorText(error), "error");
      }
    },
  });
}

const stateCell = (item) => el("span", { class: item.enabled ? "state-on" : "state-off",
                                          text: t(item.enabled ? "admin.enabled" : "admin.disabled") });
const officeName = (id) => (state.offices.find((o) => o.id === id) || {}).name || "";

function renderDirectory() {
  $("offices-table").replaceChildren(table([
    { key: "admin.col.name", value: (o) => o.name },
    { key: "admin.col.municipality", value: (o) => o.municipality },
    { key: "admin.col.defaultLanguage", value: (o) => ({ fi: "Suomi", sv: "Svenska", en: "English" })[o.default_language] },
    { key: "admin.col.state", value: stateCell },
    { key: null, value: (o) => toggle("offices", o) },
  ], state.offices));
  $("endpoints-table").replaceChildren(table([
    { key: "admin.col.name", value: (e) => e.name },
    { key: "admin.col.office", value: (e) => officeName(e.office_id) },
    { key: "admin.col.presence", value: (e) => t(`admin.presence.${e.presence}`) },
    { key: "admin.col.state", value: stateCell },
    { key: null, value: (e) => el("span", {}, toggle("endpoints", e), " ",
      el("button", { type: "button", class: "secondary", text: t("admin.endpoints.resetCredential"),
                     onclick: () => resetCredential(e) })) },
  ], state.endpoints));
  $("users-table").replaceChildren(table([
    { key: "admin.col.username", value: (u) => u.username },
    { key: "admin.col.name", value: (u) => u.display_name },
    { key: "admin.col.role", value: (u) => t(`admin.role.${u.role}`) },
    { key: "admin.col.office", value: (u) => officeName(u.office_id) },
    { key: "admin.col.authorities", value: (u) => (u.authorities || []).join(", ") },
    { key: "admin.col.languages", value: (u) => (u.languages || []).join(", ") },
    { key: "admin.col.presence",
      value: (u) => (u.online && ["available", "busy", "away"].includes(u.presence)
        ? t(`console.presence.${u.presence}`) : t("admin.presence.offline")) },
    { key: "admin.col.state", value: stateCell },
    { key: null, value: (u) => toggle("users", u) },
  ], state.users));
  for (const id of ["endpoint-office", "user-office"]) {
    const select = $(id);
    const chosen = select.value;
    select.replaceChildren();
    if (id === "user-office") select.append(el("option", { value: "", text: t("admin.field.noOffice") }));
    for (const o of state.offices) select.append(el("option", { value: String(o.id), text: o.name }));
    if (chosen) select.value = chosen;
  }
}

function showCredential(endpoint, credential) {
  const url = `${location.origin}/kiosk#endpoint=${endpoint.id}&credential=${encodeURIComponent(credential)}`;
  const box = $("endpoint-credential");
  box.textContent = t("admin.endpoints.credential", { name: endpoint.name, url });
  box.hidden = false;
}

async function resetCredential(endpoint) {
  try {
    const body = await api(`/api/admin/endpoints/${endpoint.id}/credential`, { method: "POST", body: {} });
    showCredential(body.item || endpoint, body.credential);
  } catch (error) {
    notify(errorText(error), "error");
  }
}

const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);

async function submit(event, kind, body, after) {
  event.preventDefault();
  try {
    const result = await api(`/api/admin/${kind}`, { method: "POST", body });
    event.target.reset();
    notify(t("admin.saved"));
    if (after) after(result);
    loadDirectory();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function init() {
  for (const b of document.querySelectorAll(".console-nav [data-view]")) {
    b.addEventListener("click", () => showView(b.dataset.view));
  }
  $("stats-form").addEventListener("submit", loadStats);
  $("export-csv").addEventListener("click", exportCsv);
  $("office-form").addEventListener("submit", (e) => submit(e, "offices", {
    name: $("office-name").value, municipality: $("office-municipality").value,
    default_language: $("office-language").value,
  }));
  $("endpoint-form").addEventListener("submit", (e) => submit(e, "endpoints", {
    office_id: Number($("endpoint-office").value), name: $("endpoint-name").value,
  }, (result) => showCredential(result.item, result.credential)));
  $("user-form").addEventListener("submit", (e) => {
    const body = {
      username: $("user-username").value, display_name: $("user-display").value,
      role: $("user-role").value, password: $("user-password").value,
      authorities: list($("user-authorities").value), languages: list($("user-languages").value),
    };
    if ($("user-office").value) body.office_id = Number($("user-office").value);
    return submit(e, "users", body);
  });
  const month = new Date().toISOString().slice(0, 7);
  $("stats-from").value = `${month.slice(0, 4)}-01`;
  $("stats-to").value = month;
  onLanguageChange(() => {
    renderLive();
    renderStats();
    if (state.offices.length) renderDirectory();
  });
  startConsole({
    roles: ["admin"],
    onSession: (ctx) => {
      state.ctx = ctx;
      ctx.socket.on("queue:update", () => { if (state.view === "live") loadLive(); });
      showView("live");
    },
    onSync: (ack, ctx) => {
      state.ctx = ctx;
      state.authorities = ack.authorities || state.authorities;
      state.live = { calls: ack.calls || [], queues: ack.queues || [] };
      renderLive();
    },
  });
}

init();
