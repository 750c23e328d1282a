// The public booking page: a new booking (/book), or one opened by its link (/booking/<token>)
// or by its code and contact. Talks to /api/public/booking/* (signaling/booking/booking_api.py).
import {
  addStrings, applyTranslations, language, languageName, localName, mountLanguageSwitcher,
  onLanguageChange, rememberedLanguage, setLanguage, t,
} from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";
import { BOOK_STRINGS } from "./strings.js";

addStrings(BOOK_STRINGS);

const $ = (id) => document.getElementById(id);
const SLOT_DAYS = 14;
const state = {
  offices: [],
  offer: null, // {office, authorities, interpreting}
  slots: [],
  booking: null, // the customer's view of the booking shown
  credentials: null, // {token} or {code, contact}
};

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = {};
  try { data = await response.json(); } catch { /* not JSON */ }
  if (!response.ok || !data.ok) {
    const error = new Error((data.error && data.error.message) || response.statusText);
    error.reason = (data.error && (data.error.reason || data.error.code)) || "generic";
    throw error;
  }
  return data;
}

function showError(error) {
  const box = $("book-error");
  if (!error) { box.hidden = true; return; }
  const key = `book.error.${error.reason || "generic"}`;
  const known = t(key) !== key;
  box.textContent = known ? t(key) : `${t("book.error.generic")} (${error.message})`;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

const HELSINKI = "Europe/Helsinki";
const LOCALES = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" };

function dayText(iso) {
  return new Date(iso).toLocaleDateString(LOCALES[language()], {
    timeZone: HELSINKI, weekday: "long", day: "numeric", month: "numeric",
  });
}

function timeText(iso) {
  return new Date(iso).toLocaleTimeString(LOCALES[language()], {
    timeZone: HELSINKI, hour: "2-digit", minute: "2-digit",
  });
}

function fillSelect(select, options, chosen) {
  select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
  if (chosen !== undefined && options.some(([v]) => v === chosen)) select.value = chosen;
}

/** The free slots as one select, grouped by (Helsinki) day. */
function fillSlots(select, slots, chosen) {
  select.replaceChildren();
  let group = null;
  let day = null;
  for (const slot of slots) {
    const d = dayText(slot.starts_at);
    if (d !== day) {
      day = d;
      group = el("optgroup", { label: d });
      select.append(group);
    }
    group.append(el("option", { value: slot.starts_at, text: `${d} ${timeText(slot.starts_at)}` }));
  }
  if (chosen && slots.some((s) => s.starts_at === chosen)) select.value = chosen;
}

// ---- a new booking -----------------------------------------------------------------------------

function authority() {
  return (state.offer?.authorities || []).find((a) => a.code === $("book-authority").value);
}

function renderOffices() {
  fillSelect($("book-office"), state.offices.map((o) => [String(o.id), o.name]), $("book-office").value);
}

function renderOffer() {
  const offer = state.offer;
  if (!offer) return;
  fillSelect($("book-authority"), offer.authorities.map((a) => [a.code, localName(a)]),
             $("book-authority").value);
  const chosen = authority();
  fillSelect($("book-service"), (chosen?.service_types || []).map((s) => [s.code, localName(s)]),
             $("book-service").value);
  fillSelect($("book-language"), (chosen?.languages || []).map((c) => [c, languageName(c)]),
             $("book-language").value);
  fillSelect($("book-interpreting"),
             [["", t("book.noInterpreter")], ...offer.interpreting.map((c) => [c, languageName(c)])],
             $("book-interpreting").value);
}

async function loadOffer() {
  const office = $("book-office").value;
  if (!office) return;
  state.offer = await api("GET", `/api/public/booking/offer?office=${encodeURIComponent(office)}`);
  renderOffer();
  await loadSlots();
}

async function fetchSlots(office, authorityCode, languageCode, interpreting = null) {
  const query = new URLSearchParams({ office, authority: authorityCode, language: languageCode,
                                      days: String(SLOT_DAYS) });
  // With an interpreting need only the times an interpreter is free (issue 17).
  if (interpreting) query.set("interpreting", interpreting);
  return (await api("GET", `/api/public/booking/slots?${query}`)).slots;
}

async function loadSlots() {
  const help = $("book-slot-help");
  const select = $("book-slot");
  const chosen = authority();
  if (!chosen || !$("book-language").value) return;
  help.textContent = t("book.loading");
  try {
    state.slots = await fetchSlots($("book-office").value, chosen.code, $("book-language").value,
                                   $("book-interpreting").value || null);
  } catch (error) {
    state.slots = [];
    showError(error);
  }
  fillSlots(select, state.slots, select.value);
  help.textContent = state.slots.length ? t("book.slotsCount", { n: state.slots.length })
                                        : t("book.noSlots");
}

async function submitBooking(event) {
  event.preventDefault();
  showError(null);
  const email = $("book-email").value.trim();
  const phone = $("book-phone").value.trim();
  if (!$("book-slot").value) { showError({ reason: "choose" }); return; }
  if (!email && !phone) { showError({ reason: "no_contact" }); $("book-email").focus(); return; }
  const button = $("book-submit");
  button.disabled = true;
  try {
    const answer = await api("POST", "/api/public/booking", {
      office_id: Number($("book-office").value),
      authority: $("book-authority").value,
      service_type: $("book-service").value,
      language: $("book-language").value,
      interpreting: $("book-interpreting").value || null,
      remote: document.querySelector("input[name=place]:checked").value === "remote",
      starts_at: $("book-slot").value,
      email: email || null,
      phone: phone || null,
      message_language: language(),
    });
    state.credentials = { token: answer.manage_path.split("/").pop() };
    showBooking(answer.booking, "book.booked");
  } catch (error) {
    showError(error);
    if (error.reason === "slot_taken") await loadSlots();
  } finally {
    button.disabled = false;
  }
}

// ---- an existing booking -----------------------------------------------------------------------

let titleKey = "book.yourBooking";

function showBooking(booking, key) {
  state.booking = booking;
  titleKey = booking.status === "cancelled" ? "book.cancelledTitle" : key;
  $("book-form").hidden = true;
  $("find").hidden = true;
  $("booking").hidden = false;
  $("rebook-form").hidden = true;
  renderBooking();
  $("booking-title").focus();
}

function renderBooking() {
  const b = state.booking;
  if (!b) return;
  $("booking-title").textContent = t(titleKey);
  $("booking-code").textContent = b.code;
  const rows = [
    ["book.when", `${dayText(b.starts_at)} ${timeText(b.starts_at)}`],
    ["book.where", b.remote ? t("book.fromHome") : b.office_name],
    ["book.what", `${localName({ name: b.authority_name })} – ${localName({ name: b.service_name })}`],
    ["book.language", languageName(b.language)],
  ];
  if (b.interpreting) rows.push(["book.interpreter", languageName(b.interpreting)]);
  $("booking-details").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: t(k) }), el("dd", { text: v })]));
  $("booking-note").textContent = b.status === "booked" ? t(b.remote ? "book.noteRemote" : "book.noteOffice") : "";
  const open = b.status === "booked";
  $("booking-actions").hidden = !open;
  const cancel = $("booking-cancel");
  cancel.textContent = t(cancel.dataset.armed ? "book.cancelConfirm" : "book.cancel");
}

async function lookup(credentials) {
  const answer = await api("POST", "/api/public/booking/lookup", credentials);
  state.credentials = credentials;
  showBooking(answer.booking, "book.yourBooking");
}

async function cancelBooking() {
  const button = $("booking-cancel");
  if (!button.dataset.armed) {
    // Asked twice, in the page itself: a confirm() dialog is easy to miss on a phone.
    button.dataset.armed = "1";
    button.textContent = t("book.cancelConfirm");
    return;
  }
  delete button.dataset.armed;
  showError(null);
  try {
    const answer = await api("POST", "/api/public/booking/cancel", state.credentials);
    showBooking(answer.booking, "book.cancelledTitle");
  } catch (error) {
    showError(error);
    renderBooking();
  }
}

async function openRebook() {
  showError(null);
  const b = state.booking;
  $("rebook-form").hidden = false;
  try {
    const slots = await fetchSlots(String(b.office_id), b.authority, b.language, b.interpreting);
    fillSlots($("rebook-slot"), slots.filter((s) => s.starts_at !== b.starts_at));
    $("rebook-slot").focus();
  } catch (error) {
    showError(error);
  }
}

async function submitRebook(event) {
  event.preventDefault();
  showError(null);
  if (!$("rebook-slot").value) { showError({ reason: "choose" }); return; }
  try {
    const answer = await api("POST", "/api/public/booking/rebook",
                             { ...state.credentials, starts_at: $("rebook-slot").value });
    showBooking(answer.booking, "book.moved");
  } catch (error) {
    showError(error);
    if (error.reason === "slot_taken") await openRebook();
  }
}

async function submitFind(event) {
  event.preventDefault();
  showError(null);
  const code = $("find-code").value.trim();
  const contact = $("find-contact").value.trim();
  if (!code || contact.length < 3) { showError({ reason: "booking_unknown" }); return; }
  try {
    await lookup({ code, contact });
  } catch (error) {
    showError(error);
  }
}

// ---- start -------------------------------------------------------------------------------------

async function init() {
  setLanguage(rememberedLanguage() || "fi");
  mountLanguageSwitcher($("language-switcher"));
  applyTranslations();
  onLanguageChange(() => {
    renderOffer();
    fillSlots($("book-slot"), state.slots, $("book-slot").value);
    renderBooking();
  });
  $("book-form").addEventListener("submit", submitBooking);
  $("find-form").addEventListener("submit", submitFind);
  $("rebook-form").addEventListener("submit", submitRebook);
  $("booking-cancel").addEventListener("click", cancelBooking);
  $("booking-rebook").addEventListener("click", openRebook);
  $("book-office").addEventListener("change", () => loadOffer().catch(showError));
  $("book-authority").addEventListener("change", () => { renderOffer(); loadSlots(); });
  $("book-language").addEventListener("change", loadSlots);
  $("book-interpreting").addEventListener("change", loadSlots);
  const match = location.pathname.match(/^\/booking\/([A-Za-z0-9_-]{16,64})$/);
  try {
    if (match) {
      await lookup({ token: match[1] });
    } else {
      state.offices = (await api("GET", "/api/public/booking/offices")).offices;
      renderOffices();
      const wanted = new URLSearchParams(location.search).get("office");
      if (wanted && state.offices.some((o) => String(o.id) === wanted)) $("book-office").value = wanted;
      await loadOffer();
    }
  } catch (error) {
    showError(error);
  }
  document.body.dataset.ready = "1";
}

init();
