// Booking settings of the administrator (issue 17): each expert's weekly availability per
// authority (when he takes booked appointments) and each authority's slot length. HTTP API of
// signaling/booking/booking_api.py: GET /api/booking/availability, PUT /api/booking/availability/
// {user}/{authority}, GET /api/booking/slot-lengths, PUT /api/booking/slot-lengths/{authority}.
import { addStrings, localName, onLanguageChange, t } from "/static/common/js/i18n.js";
import { $, errorText, notify } from "/static/console/js/console-app.js";
import { api } from "/static/console/js/session.js";
import { el } from "/static/common/js/dom.js";

addStrings({
  fi: {
    "admin.nav.booking": "Ajanvaraus",
    "admin.booking.title": "Ajanvaraus: asiantuntijoiden vastaanottoajat",
    "admin.booking.help": "Asiakas voi varata ajan silloin, kun asiantuntija ottaa varauksia ja palvelupiste palvelee. Yksi rivi kutakin aikaa: esimerkiksi ”ma-to 09:00-12:00”.",
    "admin.booking.expert": "Asiantuntija",
    "admin.booking.weekly": "Vastaanottoajat viikossa",
    "admin.booking.save": "Tallenna vastaanottoajat",
    "admin.booking.clear": "Ei varauksia",
    "admin.booking.none": "Kukaan asiantuntija ei vielä ota varauksia.",
    "admin.booking.noExperts": "Ei asiantuntijoita.",
    "admin.booking.slotTitle": "Varattavan ajan pituus",
    "admin.booking.minutes": "Minuutteja",
    "admin.booking.saveSlot": "Tallenna pituus",
    "admin.booking.defaultSlot": "Oletus",
    "admin.booking.isDefault": "{minutes} min (oletus)",
    "admin.booking.isCustom": "{minutes} min",
    "admin.col.weekly": "Vastaanottoajat",
    "admin.col.slot": "Ajan pituus",
  },
  sv: {
    "admin.nav.booking": "Tidsbokning",
    "admin.booking.title": "Tidsbokning: experternas mottagningstider",
    "admin.booking.help": "Kunden kan boka en tid när experten tar emot bokningar och servicepunkten betjänar. En rad per tid: till exempel ”mån-tor 09:00-12:00”.",
    "admin.booking.expert": "Expert",
    "admin.booking.weekly": "Mottagningstider per vecka",
    "admin.booking.save": "Spara mottagningstiderna",
    "admin.booking.clear": "Inga bokningar",
    "admin.booking.none": "Ingen expert tar emot bokningar ännu.",
    "admin.booking.noExperts": "Inga experter.",
    "admin.booking.slotTitle": "Längden på en bokad tid",
    "admin.booking.minutes": "Minuter",
    "admin.booking.saveSlot": "Spara längden",
    "admin.booking.defaultSlot": "Standard",
    "admin.booking.isDefault": "{minutes} min (standard)",
    "admin.booking.isCustom": "{minutes} min",
    "admin.col.weekly": "Mottagningstider",
    "admin.col.slot": "Tidens längd",
  },
  en: {
    "admin.nav.booking": "Booking",
    "admin.booking.title": "Booking: when experts take appointments",
    "admin.booking.help": "Customers can book a time when the expert takes bookings and the office serves. One line per time: for example “mon-thu 09:00-12:00”.",
    "admin.booking.expert": "Expert",
    "admin.booking.weekly": "Weekly hours for appointments",
    "admin.booking.save": "Save the hours",
    "admin.booking.clear": "No bookings",
    "admin.booking.none": "No expert takes bookings yet.",
    "admin.booking.noExperts": "No experts.",
    "admin.booking.slotTitle": "Length of a booked time",
    "admin.booking.minutes": "Minutes",
    "admin.booking.saveSlot": "Save the length",
    "admin.booking.defaultSlot": "Default",
    "admin.booking.isDefault": "{minutes} min (default)",
    "admin.booking.isCustom": "{minutes} min",
    "admin.col.weekly": "Hours for appointments",
    "admin.col.slot": "Length",
  },
});

const view = { experts: [], authorities: [], availability: [], lengths: [], bound: false };

const authorityLabel = (code) => {
  const a = view.authorities.find((x) => x.code === code);
  return a ? localName(a) : code;
};
const expertLabel = (id) => {
  const u = view.experts.find((x) => x.id === id);
  return u ? `${u.display_name} (${u.username})` : String(id);
};

function simpleTable(columns, rows, caption) {
  const head = el("tr", {}, ...columns.map(([key]) => el("th", { scope: "col", text: t(key) })));
  const body = el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map(([key, value]) => {
    const td = el("td", { text: value(row) });
    td.dataset.label = t(key);
    return td;
  }))));
  return el("div", { class: "table-wrap stacked" },
    el("table", {}, el("caption", { class: "visually-hidden", text: caption }),
       el("thead", {}, head), body));
}

function fillSelect(select, items) {
  const keep = select.value;
  select.replaceChildren(...items.map(([value, label]) => el("option", { value, text: label })));
  if (items.some(([value]) => value === keep)) select.value = keep;
}

function currentExpert() {
  return view.experts.find((u) => String(u.id) === $("availability-expert").value);
}

function fillWeekly() {
  const expert = currentExpert();
  const row = view.availability.find((r) => expert && r.user_id === expert.id
    && r.authority === $("availability-authority").value);
  $("availability-weekly").value = row ? row.weekly.join("\n") : "";
}

function render() {
  fillSelect($("availability-expert"), view.experts.map((u) => [String(u.id), expertLabel(u.id)]));
  const expert = currentExpert();
  fillSelect($("availability-authority"),
             (expert ? expert.authorities : []).map((code) => [code, authorityLabel(code)]));
  fillSelect($("slot-authority"), view.authorities.map((a) => [a.code, localName(a)]));
  $("availability-form").querySelector("button[type=submit]").disabled = !expert;
  $("availability-table").replaceChildren(view.availability.length
    ? simpleTable([
      ["admin.booking.expert", (r) => expertLabel(r.user_id)],
      ["admin.col.authority", (r) => authorityLabel(r.authority)],
      ["admin.col.weekly", (r) => r.weekly.join(", ")],
    ], view.availability, t("admin.booking.title"))
    : el("p", { class: "help", text: t(view.experts.length ? "admin.booking.none" : "admin.booking.noExperts") }));
  $("slot-length-table").replaceChildren(simpleTable([
    ["admin.col.authority", (r) => authorityLabel(r.authority)],
    ["admin.col.slot", (r) => t(r.custom ? "admin.booking.isCustom" : "admin.booking.isDefault",
                               { minutes: r.minutes })],
  ], view.lengths, t("admin.booking.slotTitle")));
  fillWeekly();
  fillMinutes();
}

function fillMinutes() {
  const row = view.lengths.find((r) => r.authority === $("slot-authority").value);
  $("slot-minutes").value = row ? String(row.minutes) : "";
}

async function reload() {
  const [users, authorities, availability, lengths] = await Promise.all([
    api("/api/admin/users"), api("/api/admin/authorities"), api("/api/booking/availability"),
    api("/api/booking/slot-lengths"),
  ]);
  view.experts = users.items.filter((u) => u.role === "expert" && u.enabled);
  view.authorities = authorities.items.filter((a) => a.enabled);
  view.availability = availability.items;
  view.lengths = lengths.items;
  render();
}

async function saveWeekly(weekly) {
  const expert = currentExpert();
  if (!expert) return;
  try {
    await api(`/api/booking/availability/${expert.id}/${$("availability-authority").value}`,
              { method: "PUT", body: { weekly } });
    notify(t("admin.saved"));
    await reload();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

async function saveMinutes(minutes) {
  try {
    await api(`/api/booking/slot-lengths/${$("slot-authority").value}`,
              { method: "PUT", body: { minutes } });
    notify(t("admin.saved"));
    await reload();
  } catch (error) {
    notify(errorText(error), "error");
  }
}

function bind() {
  view.bound = true;
  $("availability-expert").addEventListener("change", render);
  $("availability-authority").addEventListener("change", fillWeekly);
  $("slot-authority").addEventListener("change", fillMinutes);
  $("availability-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveWeekly($("availability-weekly").value.split("\n").map((l) => l.trim()).filter(Boolean));
  });
  $("availability-clear").addEventListener("click", () => saveWeekly([]));
  $("slot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveMinutes(Number($("slot-minutes").value));
  });
  $("slot-default").addEventListener("click", () => saveMinutes(null));
  onLanguageChange(() => { if (view.experts.length || view.lengths.length) render(); });
}

/** Show the booking view's data (admin.js calls this when the view opens). */
export async function loadBooking() {
  if (!view.bound) bind();
  await reload();
}
