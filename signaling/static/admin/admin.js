// The administrator's pages: live calls and queues, statistics with charts and the CSV export
// for cost compensation, the service log with its verification, and the directory (offices,
// kiosk devices, users) through the REST API. Offices, authorities and languages are chosen
// from lists the server gives, never typed as codes or numbers.

import {
  addStrings, clockText, formatDateTime, language, languageName, localName, onLanguageChange, t,
} from "/static/common/js/i18n.js";
import { $, errorText, notify, selectView, startConsole } from "/static/console/js/console-app.js";
import { api } from "/static/console/js/session.js";
import { ADMIN_STRINGS } from "./strings.js";
import { loadKioskHealth } from "./kiosk-health.js";
import { loadBooking } from "./availability.js";
import { el } from "/static/common/js/dom.js";

addStrings(ADMIN_STRINGS);

const LOG_PAGE = 25;
// Shown first among the languages to choose (the rest behind "more languages").
const COMMON_LANGUAGES = ["fin", "swe", "eng", "fse", "fss", "sme"];

const state = {
  ctx: null, view: "live", authorities: [], offices: [], endpoints: [], users: [], languages: [],
  serviceTypes: {}, live: { calls: [], queues: [] }, stats: null, hourly: null, charts: [],
  log: { items: [], total: 0, offset: 0 }, verdict: null, liveTimer: null, directoryLoaded: false,
};
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.admin = state;

/** A table from column specs [{key (i18n), value(row), numeric?}] and rows. */
function table(columns, rows, caption, rowClass = () => "", { stacked = true } = {}) {
  const head = el("tr");
  for (const c of columns) {
    head.append(el("th", { scope: "col", class: c.numeric ? "numeric" : "",
                           text: c.key ? t(c.key) : "" }));
  }
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr", { class: rowClass(row) });
    for (const c of columns) {
      const value = c.value(row);
      const td = el("td", { class: c.numeric ? "numeric" : "" });
      if (c.key) td.dataset.label = t(c.key);
      if (value instanceof Node) td.append(value);
      else td.textContent = value == null ? "" : String(value);
      tr.append(td);
    }
    body.append(tr);
  }
  const tableEl = el("table", {}, el("thead", {}, head), body);
  if (caption) tableEl.prepend(el("caption", { class: "visually-hidden", text: caption }));
  return el("div", { class: stacked ? "table-wrap stacked" : "table-wrap" }, tableEl);
}

/** A table wider than the screen scrolls sideways: make it reachable by keyboard then. */
function markScrollable() {
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    if (wrap.scrollWidth > wrap.clientWidth + 1) wrap.setAttribute("tabindex", "0");
    else wrap.removeAttribute("tabindex");
  }
}

function showView(name) {
  state.view = name;
  selectView(name);
  markScrollable();
  clearInterval(state.liveTimer);
  if (name === "live") {
    loadLive();
    state.liveTimer = setInterval(loadLive, 5000);
  }
  if (name === "stats") loadStats();
  if (name === "log") loadChoices().then(() => loadLog());
  if (["offices", "endpoints", "users"].includes(name)) loadDirectory();
  // The experts' hours for appointments and the slot lengths (availability.js, issue 17).
  if (name === "booking") loadBooking().catch((error) => notify(errorText(error), "error"));
  // Each kiosk's latest device self-test, per office (kiosk-health.js).
  if (name === "endpoints") {
    loadKioskHealth($("kiosk-health-list")).catch((error) => notify(errorText(error), "error"));
  }
}

const authorityName = (id, code) => {
  const a = state.authorities.find((x) => x.id === id || (code && x.code === code));
  return a ? localName(a) : code || "";
};
const officeName = (id) => (state.offices.find((o) => o.id === id) || {}).name || "";
const langName = (code) => {
  const known = state.languages.find((l) => l.code === code);
  return known ? localName(known) : languageName(code);
};
const byName = (a, b) => a.localeCompare(b, language());

// ---- choices from the server -----------------------------------------------------------------

/** Offices, authorities and languages for the selects (once; the directory view reloads). */
async function loadChoices(force = false) {
  if (state.directoryLoaded && !force) return;
  try {
    const [offices, authorities, languages] = await Promise.all([
      api("/api/admin/offices"), api("/api/admin/authorities"), api("/api/admin/languages"),
    ]);
    state.offices = offices.items;
    state.authorities = authorities.items;
    state.languages = languages.items;
    state.directoryLoaded = true;
    renderChoices();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

const fold = (text) => text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();

/** Fill one office select (modes: all / none / required), keeping to the filter's matches. */
function fillOfficeSelect(select) {
  const mode = select.dataset.officeSelect;
  const filter = document.querySelector(`[data-office-filter="${select.id}"]`);
  const wanted = filter ? fold(filter.value.trim()) : "";
  const chosen = select.value;
  const offices = state.offices
    .filter((o) => mode === "all" || o.enabled)
    .filter((o) => !wanted || fold(`${o.name} ${o.municipality}`).includes(wanted))
    .sort((a, b) => byName(a.name, b.name));
  const first = {
    all: t("admin.field.allOffices"), none: t("admin.field.noOffice"),
    required: t("admin.field.chooseOffice"),
  }[mode];
  const options = [el("option", { value: "", text: first })];
  for (const o of offices) {
    // The name, and the municipality only where two offices share a name.
    const twin = state.offices.some((x) => x.id !== o.id && x.name === o.name);
    const label = twin ? `${o.name} (${o.municipality})` : o.name;
    options.push(el("option", { value: String(o.id), text: label }));
  }
  select.replaceChildren(...options);
  if (chosen && offices.some((o) => String(o.id) === chosen)) select.value = chosen;
  else if (wanted && offices.length === 1) select.value = String(offices[0].id);
  else select.value = "";
}

function fillAuthoritySelect(select) {
  const chosen = select.value;
  const options = [el("option", { value: "", text: t("admin.field.allAuthorities") })];
  for (const a of [...state.authorities].sort((x, y) => byName(localName(x), localName(y)))) {
    options.push(el("option", { value: String(a.id), text: localName(a) }));
  }
  select.replaceChildren(...options);
  select.value = chosen;
}

function checkboxes(container, name, items, checked) {
  container.replaceChildren(...items.map((item) => el("label", { class: "choice" },
    el("input", Object.assign({ type: "checkbox", name, value: item.value },
                              checked.has(item.value) ? { checked: "" } : {})),
    el("span", { text: item.label }))));
}

function renderChoices() {
  for (const select of document.querySelectorAll("[data-office-select]")) fillOfficeSelect(select);
  fillAuthoritySelect($("log-authority"));
  const checkedOf = (name) => new Set([...document.querySelectorAll(`input[name=${name}]:checked`)]
    .map((i) => i.value));
  const enabled = state.authorities.filter((a) => a.enabled)
    .sort((x, y) => byName(localName(x), localName(y)));
  const authorityBox = $("user-authority-choices");
  if (enabled.length) {
    checkboxes(authorityBox, "user-authority",
      enabled.map((a) => ({ value: a.code, label: localName(a) })), checkedOf("user-authority"));
  } else {
    authorityBox.replaceChildren(el("p", { class: "empty", text: t("admin.field.noAuthorities") }));
  }
  // The languages most chosen and those already in use first; the rest behind "more".
  const checkedLanguages = checkedOf("user-language");
  const first = (l) => COMMON_LANGUAGES.includes(l.code) || l.in_use;
  const item = (l) => ({ value: l.code, label: localName(l) });
  const more = state.languages.filter((l) => !first(l));
  const box = $("user-language-choices");
  checkboxes(box, "user-language", state.languages.filter(first).map(item), checkedLanguages);
  if (more.length) {
    const list = el("div", { class: "choices" });
    checkboxes(list, "user-language", more.map(item), checkedLanguages);
    const details = el("details", { class: "more-choices" },
      el("summary", { text: t("admin.field.moreLanguages", { n: more.length }) }), list);
    if (more.some((l) => checkedLanguages.has(l.code)) || state.moreLanguagesOpen) details.open = true;
    details.addEventListener("toggle", () => { state.moreLanguagesOpen = details.open; });
    box.append(details);
  }
  showRoleFields();
}

/** Authorities are an expert's; languages an expert's or an interpreter's. */
function showRoleFields() {
  const role = $("user-role").value;
  $("user-authorities").hidden = role !== "expert";
  $("user-languages").hidden = !["expert", "interpreter"].includes(role);
}

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
      { key: "admin.col.language", value: (c) => langName(c.language) },
      { key: "admin.col.started", value: (c) => formatDateTime(c.started_at) },
      { key: "admin.col.participants",
        value: (c) => (c.participants || []).filter((p) => !p.left).map((p) => p.name).join(", ") },
    ], active)
    : el("p", { class: "empty", text: t("admin.live.noCalls") }));
  const queues = (state.live.queues || []).filter((q) => q.tickets && q.tickets.length);
  $("live-queues").replaceChildren(queues.length
    ? table([
      { key: "admin.col.authority", value: (q) => authorityName(q.authority_id, q.authority_code) },
      { key: "admin.col.language", value: (q) => langName(q.language) },
      { key: "admin.col.waiting", numeric: true, value: (q) => q.tickets.length },
      { key: "admin.col.longest", numeric: true,
        value: (q) => clockText(Math.max(...q.tickets.map((x) => x.waiting_seconds || 0))) },
    ], queues)
    : el("p", { class: "empty", text: t("admin.live.noQueues") }));
  markScrollable();
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
    const [stats, hourly, feedback] = await Promise.all([
      api(`/api/stats?${params}`), api(`/api/stats/hourly?${statsQuery()}`),
      api(`/api/stats/feedback?${params}`),
    ]);
    state.stats = stats;
    state.hourly = hourly;
    state.feedback = feedback;
    renderStats();
    renderFeedback();
    renderCharts();
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
    { key: "admin.col.deskServices", numeric: true, value: (r) => r.desk_services || 0 },
  ], data.rows));
  markScrollable();
}

/** The kiosks' anonymous feedback (signaling/records/feedback.py), grouped as the figures above. */
function renderFeedback() {
  const data = state.feedback;
  if (!data) return;
  const container = $("feedback-table");
  if (!data.rows.length) {
    container.replaceChildren(el("p", { class: "empty", text: t("admin.feedback.none") }));
    return;
  }
  const first = {
    authority: { key: "admin.col.authority",
                 value: (r) => authorityName(r.authority_id, r.authority_code) },
    office: { key: "admin.col.office", value: (r) => r.office_name },
    month: { key: "admin.col.month", value: (r) => r.month },
  }[data.by];
  container.replaceChildren(table([
    first,
    { key: "admin.col.answers", numeric: true, value: (r) => r.answers },
    { key: "admin.col.good", numeric: true, value: (r) => r.good },
    { key: "admin.col.neutral", numeric: true, value: (r) => r.neutral },
    { key: "admin.col.bad", numeric: true, value: (r) => r.bad },
    ...["waiting", "connection", "service", "other"].map((reason) => ({
      key: `admin.col.reason.${reason}`, numeric: true, value: (r) => r.reasons[reason] })),
  ], data.rows, t("admin.feedback.title")));
  markScrollable();
}

// ---- charts (uPlot) ------------------------------------------------------------------------

const hourLabel = (h) => `${String(h).padStart(2, "0")}–${String((h + 1) % 24).padStart(2, "0")}`;
const waitMinutes = (s) => (s == null ? null : Math.round((s / 60) * 10) / 10);

function destroyCharts() {
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
}

function chartOptions(width, unit, series, integers = false) {
  const axisFont = "14px system-ui, sans-serif";
  return {
    width, height: 240, legend: { show: false }, cursor: { show: true, points: { show: false } },
    scales: { x: { time: false, range: [-0.5, 23.5] }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
    axes: [
      { label: t("admin.charts.hourAxis"), font: axisFont, labelFont: axisFont, stroke: "#222",
        grid: { show: false }, incrs: [1, 2, 3, 6], values: (u, vals) => vals.map((v) => String(v)) },
      Object.assign({ label: unit, font: axisFont, labelFont: axisFont, stroke: "#222", size: 56,
                      grid: { stroke: "#d5dae3", width: 1 } },
                    integers ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
                                 values: (u, vals) => vals.map((v) => String(v)) } : {}),
    ],
    series: [{}, series],
  };
}

function renderCharts() {
  destroyCharts();
  const data = state.hourly;
  const callsBox = $("chart-calls");
  const waitBox = $("chart-wait");
  if (!data) return;
  const rows = data.rows;
  const total = rows.reduce((sum, r) => sum + r.services, 0);
  renderChartTable(rows, total);
  if (!total || typeof uPlot === "undefined") {
    for (const box of [callsBox, waitBox]) {
      box.replaceChildren(el("p", { class: "empty", text: t("admin.charts.noData") }));
      box.setAttribute("aria-label", t("admin.charts.noData"));
    }
    return;
  }
  const hours = rows.map((r) => r.hour);
  const busiest = rows.reduce((best, r) => (r.services > best.services ? r : best), rows[0]);
  const slowest = rows.filter((r) => r.mean_wait_seconds != null)
    .reduce((best, r) => (r.mean_wait_seconds > best.mean_wait_seconds ? r : best));
  callsBox.setAttribute("aria-label", `${t("admin.charts.calls")}. ${t("admin.charts.callsSummary",
    { total, busiest: hourLabel(busiest.hour), n: busiest.services })}`);
  waitBox.setAttribute("aria-label", `${t("admin.charts.wait")}. ${t("admin.charts.waitSummary",
    { hour: hourLabel(slowest.hour), wait: clockText(slowest.mean_wait_seconds) })}`);
  callsBox.replaceChildren();
  waitBox.replaceChildren();
  const width = (box) => Math.max(260, Math.floor(box.getBoundingClientRect().width));
  const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 48] }) : undefined;
  state.charts.push(new uPlot(chartOptions(width(callsBox), t("admin.charts.callsAxis"), {
    label: t("admin.charts.calls"), stroke: "#003580", fill: "rgba(0, 53, 128, 0.75)", width: 1,
    paths: bars, points: { show: false },
  }, true), [hours, rows.map((r) => r.services || null)], callsBox));
  state.charts.push(new uPlot(chartOptions(width(waitBox), t("admin.charts.waitAxis"), {
    label: t("admin.charts.wait"), stroke: "#b34700", width: 3, spanGaps: false,
    points: { show: true, size: 8, fill: "#b34700" },
  }), [hours, rows.map((r) => waitMinutes(r.mean_wait_seconds))], waitBox));
}

function renderChartTable(rows, total) {
  const shown = rows.filter((r) => r.services > 0);
  $("chart-table").replaceChildren(total
    ? table([
      { key: "admin.col.hour", value: (r) => hourLabel(r.hour) },
      { key: "admin.col.services", numeric: true, value: (r) => r.services },
      { key: "admin.col.meanWait", numeric: true,
        value: (r) => (r.mean_wait_seconds == null ? "" : clockText(r.mean_wait_seconds)) },
      { key: "admin.col.maxWait", numeric: true,
        value: (r) => (r.max_wait_seconds == null ? "" : clockText(r.max_wait_seconds)) },
    ], shown, t("admin.charts.title"), () => "", { stacked: false })
    : el("p", { class: "empty", text: t("admin.charts.noData") }));
  markScrollable();
}

function resizeCharts() {
  const boxes = [$("chart-calls"), $("chart-wait")];
  state.charts.forEach((chart, i) => {
    const width = Math.max(260, Math.floor(boxes[i].getBoundingClientRect().width));
    if (Math.abs(chart.width - width) > 4) chart.setSize({ width, height: 240 });
  });
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

// ---- service log ---------------------------------------------------------------------------

function logQuery() {
  const params = new URLSearchParams();
  const values = {
    office_id: $("log-office").value, authority_id: $("log-authority").value,
    kind: $("log-kind").value, from: $("log-from").value, to: $("log-to").value,
  };
  for (const [key, value] of Object.entries(values)) if (value) params.set(key, value);
  params.set("offset", String(state.log.offset));
  params.set("limit", String(LOG_PAGE));
  return params;
}

async function loadLog(event) {
  if (event) {
    event.preventDefault();
    state.log.offset = 0;
  }
  try {
    const data = await api(`/api/admin/service-log?${logQuery()}`);
    state.log = { items: data.items, total: data.total, offset: data.offset };
    renderLog();
  } catch (error) {
    $("log-table").replaceChildren(el("p", { class: "banner error", text: errorText(error) }));
  }
}

function sizeText(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} kB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function serviceTypeName(authorityCode, code) {
  const found = (state.serviceTypes[authorityCode] || []).find((s) => s.code === code);
  return found ? localName(found) : code || "";
}

function logDetails(item) {
  const b = item.body || {};
  if (item.kind === "service") {
    const outcome = t(`admin.outcome.${b.outcome}`);
    return t("admin.log.serviceDetails", {
      type: serviceTypeName(item.authority_code, b.service_type),
      outcome: outcome.startsWith("admin.") ? b.outcome : outcome,
      expert: b.expert_name || "", wait: clockText(b.wait_seconds || 0),
      duration: clockText(b.duration_seconds || 0),
    });
  }
  return t("admin.log.documentDetails", {
    type: b.type || "", size: sizeText(b.size),
    verdict: t(b.verdict === "refused" ? "admin.log.refused" : "admin.log.received"),
    call: b.call_id == null ? "" : b.call_id,
  });
}

/** The entry the last verification found broken, if any. */
const brokenSeq = () => (state.verdict && !state.verdict.valid && state.verdict.first_broken
  ? state.verdict.first_broken.seq : null);

function renderLog() {
  const { items, total, offset } = state.log;
  $("log-table").replaceChildren(items.length
    ? table([
      { key: "admin.col.seq", numeric: true, value: (i) => i.seq },
      { key: "admin.col.filed", value: (i) => formatDateTime(i.filed_at) },
      { key: "admin.col.kind",
        value: (i) => t(i.kind === "service" ? "admin.log.kindService" : "admin.log.kindDocument") },
      { key: "admin.col.authority",
        value: (i) => (i.authority ? localName(i.authority) : i.authority_code) },
      { key: "admin.col.office", value: (i) => i.office_name },
      { key: "admin.col.details", value: logDetails },
      { key: "admin.col.signature",
        value: (i) => (i.kind === "service"
          ? el("span", { class: i.signed ? "state-on" : "state-off",
                         text: t(i.signed ? "admin.log.signed" : "admin.log.unsigned") })
          : t("admin.log.serverEntry")) },
    ], items, null, (i) => (i.seq === brokenSeq() ? "broken-row" : ""))
    : el("p", { class: "empty", text: t("admin.log.none") }));
  $("log-range").textContent = items.length
    ? t("admin.log.range", { first: offset + 1, last: offset + items.length, total })
    : "";
  $("log-newer").disabled = offset === 0;
  $("log-older").disabled = offset + items.length >= total;
  markScrollable();
}

function pageLog(step) {
  state.log.offset = Math.max(0, state.log.offset + step * LOG_PAGE);
  loadLog();
}

async function verifyLog() {
  const box = $("log-verdict");
  const button = $("log-verify");
  box.hidden = false;
  box.className = "verdict";
  box.replaceChildren(el("p", { text: t("admin.log.verifying") }));
  button.disabled = true;
  try {
    state.verdict = { ...(await api("/api/log/verify")), checked_at: new Date().toISOString() };
    renderVerdict();
    renderLog();
  } catch (error) {
    state.verdict = null;
    box.className = "verdict broken";
    box.replaceChildren(el("p", { text: errorText(error) }));
  } finally {
    button.disabled = false;
  }
}

function renderVerdict() {
  const v = state.verdict;
  const box = $("log-verdict");
  if (!v) return;
  const parts = [];
  if (v.valid) {
    box.className = "verdict intact";
    parts.push(el("p", { class: "verdict-head",
      text: `✔ ${v.entries ? t("admin.log.intact", { entries: v.entries }) : t("admin.log.empty")}` }));
  } else {
    box.className = "verdict broken";
    parts.push(el("p", { class: "verdict-head", text: `✖ ${t("admin.log.broken")}` }));
    const broken = v.first_broken || {};
    if (broken.seq != null) parts.push(el("p", { text: t("admin.log.brokenAt", { seq: broken.seq }) }));
    if (broken.problem) parts.push(el("p", { class: "detail", text: t("admin.log.problem", { problem: broken.problem }) }));
  }
  if (v.checkpoint) {
    parts.push(el("p", { text: t("admin.log.checkpoints", {
      n: v.checkpoints_checked ?? 1, seq: v.checkpoint.seq, at: formatDateTime(v.checkpoint.at) }) }));
  }
  const unsigned = v.unsigned_service_records || [];
  if (unsigned.length) {
    const shown = unsigned.slice(0, 10).join(", ") + (unsigned.length > 10 ? " …" : "");
    parts.push(el("p", { text: t("admin.log.unsignedRecords", { n: unsigned.length, seqs: shown }) }));
  }
  if (v.unanchored_entries) parts.push(el("p", { text: t("admin.log.unanchored", { n: v.unanchored_entries }) }));
  if (v.notes && v.notes.length) {
    parts.push(el("details", {}, el("summary", { text: t("admin.log.notes") }),
      el("ul", {}, ...v.notes.map((n) => el("li", { class: "detail", text: n })))));
  }
  parts.push(el("p", { class: "help", text: t("admin.log.checkedAt", { time: formatDateTime(v.checked_at) }) }));
  box.replaceChildren(...parts);
  box.hidden = false;
}

// ---- directory -----------------------------------------------------------------------------

async function loadDirectory() {
  try {
    const [offices, endpoints, users, authorities, languages] = await Promise.all([
      api("/api/admin/offices"), api("/api/admin/endpoints"), api("/api/admin/users"),
      api("/api/admin/authorities"), api("/api/admin/languages"),
    ]);
    state.offices = offices.items;
    state.endpoints = endpoints.items;
    state.users = users.items;
    state.authorities = authorities.items;
    state.languages = languages.items;
    state.directoryLoaded = true;
    renderDirectory();
    renderChoices();
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
                     "aria-label": `${t("admin.endpoints.resetCredential")}: ${e.name}`,
                     onclick: () => resetCredential(e) })) },
  ], state.endpoints));
  $("users-table").replaceChildren(table([
    { key: "admin.col.username", value: (u) => u.username },
    { key: "admin.col.name", value: (u) => u.display_name },
    { key: "admin.col.role", value: (u) => t(`admin.role.${u.role}`) },
    { key: "admin.col.office", value: (u) => officeName(u.office_id) },
    { key: "admin.col.authorities",
      value: (u) => (u.authorities || []).map((code) => authorityName(null, code)).join(", ") },
    { key: "admin.col.languages", value: (u) => (u.languages || []).map(langName).join(", ") },
    { key: "admin.col.presence",
      value: (u) => (u.online && ["available", "busy", "away"].includes(u.presence)
        ? t(`console.presence.${u.presence}`) : t("admin.presence.offline")) },
    { key: "admin.col.state", value: stateCell },
    { key: null, value: (u) => toggle("users", u) },
  ], state.users));
  markScrollable();
}

// ---- service offer and hours of an office (signaling/flow/office_offer.py) -----------------------

const lines = (id) => $(id).value.split("\n").map((l) => l.trim()).filter(Boolean);

async function loadOffer() {
  const officeId = $("offer-office").value;
  $("offer-panel").hidden = !officeId;
  state.offer = null;
  if (!officeId) return;
  try {
    state.offer = await api(`/api/admin/offices/${officeId}/offer`);
    renderOffer();
    fillHoursForm();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function hoursState(h) {
  if (h.always_open) return t("admin.offer.alwaysOpen");
  if (h.open_now) return t("admin.offer.openNow");
  return h.opens_at ? t("admin.offer.closedNow", { when: helsinkiTime(h.opens_at) })
    : t("admin.offer.closedLong");
}

/** Service hours are Finnish time wherever the administrator's browser is. */
function helsinkiTime(iso) {
  const locale = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" }[language()];
  return new Date(iso).toLocaleString(locale, {
    dateStyle: "short", timeStyle: "short", timeZone: "Europe/Helsinki",
  });
}

function renderOffer() {
  const offer = state.offer;
  if (!offer) return;
  const offered = new Map(offer.catalogue.authorities.map((a) => [a.code, a]));
  const rows = offer.hours.map((h) => ({ ...h, offered: (offered.get(h.authority) || {}).offered }));
  $("offer-table").replaceChildren(table([
    { key: "admin.field.authority", value: (r) => authorityName(null, r.authority) },
    { key: "admin.offer.offered",
      value: (r) => t(r.offered ? "admin.offer.offered" : "admin.offer.notOffered") },
    { key: "admin.col.hours", value: (r) => (r.always_open ? t("admin.offer.alwaysOpen")
      : [...r.weekly, ...r.exceptions,
        ...r.closed.map((d) => `${d} ${t("admin.offer.closedLong")}`)].join("; ")) },
    { key: "admin.col.now", value: hoursState },
  ], rows, t("admin.offer.title")));
  const enabled = state.authorities.filter((a) => a.enabled)
    .sort((x, y) => byName(localName(x), localName(y)));
  checkboxes($("catalogue-choices"), "catalogue-authority",
    enabled.map((a) => ({ value: a.code, label: localName(a) })),
    new Set(enabled.filter((a) => (offered.get(a.code) || {}).offered).map((a) => a.code)));
  const select = $("hours-authority");
  const chosen = select.value;
  select.replaceChildren(...enabled.map((a) => el("option", { value: a.code, text: localName(a) })));
  if (chosen) select.value = chosen;
  renderOfficeExtras();
  markScrollable();
}

/** The office's municipality and its clerks' desk services (issue 17). */
function renderOfficeExtras() {
  const offer = state.offer;
  const input = $("offer-municipality");
  // Not while the administrator is typing (a language switch re-renders).
  if (document.activeElement !== input) input.value = offer.municipality || "";
  const desk = offer.desk_services;
  if (!desk) return;
  checkboxes($("desk-service-choices"), "desk-service",
    desk.all.map((s) => ({ value: s.code, label: localName(s) })), new Set(desk.services));
}

async function saveMunicipality(event) {
  event.preventDefault();
  try {
    await api(`/api/admin/offices/${$("offer-office").value}/municipality`,
      { method: "PUT", body: { municipality: $("offer-municipality").value } });
    notify(t("admin.saved"));
    await loadOffer();
    await loadDirectory();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

async function saveDeskServices(event) {
  event.preventDefault();
  const chosen = checkedValues("desk-service");
  if (!chosen.length) {
    notify(t("admin.offer.noDeskService"), "error");
    return;
  }
  const all = state.offer.desk_services.all.every((s) => chosen.includes(s.code));
  try {
    await api(`/api/admin/offices/${$("offer-office").value}/desk-services`,
      { method: "PUT", body: { services: all ? [] : chosen } });
    notify(t("admin.saved"));
    await loadOffer();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

/** The chosen authority's current rules into the form, ready to edit. */
function fillHoursForm() {
  const h = state.offer && state.offer.hours.find((x) => x.authority === $("hours-authority").value);
  if (!h) return;
  $("hours-weekly").value = (h.weekly || []).join("\n");
  $("hours-exceptions").value = (h.exceptions || []).join("\n");
  $("hours-closed").value = (h.closed || []).join("\n");
  $("hours-holidays").checked = h.always_open ? true : h.public_holidays;
}

async function saveCatalogue(event) {
  event.preventDefault();
  const chosen = checkedValues("catalogue-authority");
  if (!chosen.length) {
    notify(t("admin.offer.noneChosen"), "error");
    return;
  }
  const all = state.authorities.filter((a) => a.enabled).every((a) => chosen.includes(a.code));
  try {
    await api(`/api/admin/offices/${$("offer-office").value}/catalogue`,
      { method: "PUT", body: { authorities: all ? [] : chosen } });
    notify(t("admin.saved"));
    await loadOffer();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

async function saveHours(event) {
  event.preventDefault();
  const path = `/api/admin/offices/${$("offer-office").value}/hours/${$("hours-authority").value}`;
  try {
    await api(path, { method: "PUT", body: {
      weekly: lines("hours-weekly"), exceptions: lines("hours-exceptions"),
      closed: lines("hours-closed"), public_holidays: $("hours-holidays").checked,
    } });
    notify(t("admin.saved"));
    await loadOffer();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

async function clearHours() {
  const path = `/api/admin/offices/${$("offer-office").value}/hours/${$("hours-authority").value}`;
  try {
    await api(path, { method: "DELETE" });
    notify(t("admin.saved"));
    await loadOffer();
  } catch (error) {
    notify(errorText(error), "error");
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

const checkedValues = (name) => [...document.querySelectorAll(`input[name=${name}]:checked`)]
  .map((i) => i.value);

async function submit(event, kind, body, after) {
  event.preventDefault();
  try {
    const result = await api(`/api/admin/${kind}`, { method: "POST", body });
    event.target.reset();
    for (const filter of event.target.querySelectorAll("[data-office-filter]")) filter.value = "";
    notify(t("admin.saved"));
    if (after) after(result);
    await loadDirectory();
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
  $("log-form").addEventListener("submit", loadLog);
  $("log-verify").addEventListener("click", verifyLog);
  $("log-newer").addEventListener("click", () => pageLog(-1));
  $("log-older").addEventListener("click", () => pageLog(1));
  for (const filter of document.querySelectorAll("[data-office-filter]")) {
    filter.addEventListener("input", () => fillOfficeSelect($(filter.dataset.officeFilter)));
  }
  $("user-role").addEventListener("change", showRoleFields);
  $("offer-office").addEventListener("change", loadOffer);
  $("offer-office-form").addEventListener("submit", (e) => e.preventDefault());
  $("hours-authority").addEventListener("change", fillHoursForm);
  $("catalogue-form").addEventListener("submit", saveCatalogue);
  $("hours-form").addEventListener("submit", saveHours);
  $("offer-municipality-form").addEventListener("submit", saveMunicipality);
  $("desk-services-form").addEventListener("submit", saveDeskServices);
  $("hours-clear").addEventListener("click", clearHours);
  $("office-form").addEventListener("submit", (e) => submit(e, "offices", {
    name: $("office-name").value, municipality: $("office-municipality").value,
    default_language: $("office-language").value,
  }));
  $("endpoint-form").addEventListener("submit", (e) => submit(e, "endpoints", {
    office_id: Number($("endpoint-office").value), name: $("endpoint-name").value,
  }, (result) => showCredential(result.item, result.credential)));
  $("user-form").addEventListener("submit", (e) => {
    const role = $("user-role").value;
    const body = {
      username: $("user-username").value, display_name: $("user-display").value,
      role, password: $("user-password").value,
      authorities: role === "expert" ? checkedValues("user-authority") : [],
      languages: ["expert", "interpreter"].includes(role) ? checkedValues("user-language") : [],
    };
    if ($("user-office").value) body.office_id = Number($("user-office").value);
    return submit(e, "users", body, () => showRoleFields());
  });
  const month = new Date().toISOString().slice(0, 7);
  $("stats-from").value = `${month.slice(0, 4)}-01`;
  $("stats-to").value = month;
  if (typeof ResizeObserver !== "undefined") {
    new ResizeObserver(() => resizeCharts()).observe(document.querySelector(".chart-grid"));
    new ResizeObserver(() => markScrollable()).observe(document.body);
  }
  onLanguageChange(() => {
    renderLive();
    renderStats();
    renderFeedback();
    renderCharts();
    renderLog();
    renderVerdict();
    if (state.directoryLoaded) {
      renderChoices();
      renderDirectory();
      renderOffer();
    }
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
      for (const a of ack.authorities || []) state.serviceTypes[a.code] = a.service_types || [];
      if (!state.directoryLoaded) state.authorities = ack.authorities || state.authorities;
      state.live = { calls: ack.calls || [], queues: ack.queues || [] };
      renderLive();
    },
  });
}

init();
