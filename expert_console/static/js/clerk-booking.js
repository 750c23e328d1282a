// The service secretary books a customer's time at her console (issue 17): authority, matter,
// language, interpreter, place, a free slot of her office, the customer's contact; the booking
// code is then shown large. Events: booking:offer, booking:slots, booking:book
// (signaling/booking/booking_api.py).
import { addStrings, language, languageName, localName, onLanguageChange, t } from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";
import { errorText } from "./console-app.js";
import { request } from "./session.js";

addStrings({
  fi: {
    "console.booking.title": "Varaa aika asiakkaalle",
    "console.booking.authority": "Virasto",
    "console.booking.service": "Asia",
    "console.booking.language": "Asiointikieli",
    "console.booking.interpreting": "Tulkki",
    "console.booking.noInterpreter": "Ei tulkkia",
    "console.booking.remote": "Asiakas asioi kotoa videolla",
    "console.booking.slot": "Vapaa aika",
    "console.booking.noSlots": "Ei vapaita aikoja kahden viikon aikana.",
    "console.booking.email": "Asiakkaan sähköposti (valinnainen)",
    "console.booking.phone": "Asiakkaan matkapuhelin (valinnainen)",
    "console.booking.messages": "Viestien kieli",
    "console.booking.book": "Varaa",
    "console.booking.booked": "Varattu {when}. Varauskoodi:",
    "console.error.slot_taken": "Aika ehdittiin juuri varata. Valitse toinen aika.",
    "console.error.no_interpreter": "Tulkkia ei ole vapaana tähän aikaan. Valitse toinen aika.",
    "console.error.bad_email": "Sähköpostiosoite ei kelpaa.",
    "console.error.bad_phone": "Puhelinnumero ei kelpaa.",
  },
  sv: {
    "console.booking.title": "Boka en tid åt kunden",
    "console.booking.authority": "Myndighet",
    "console.booking.service": "Ärende",
    "console.booking.language": "Språk",
    "console.booking.interpreting": "Tolk",
    "console.booking.noInterpreter": "Ingen tolk",
    "console.booking.remote": "Kunden sköter ärendet hemifrån med video",
    "console.booking.slot": "Ledig tid",
    "console.booking.noSlots": "Inga lediga tider de närmaste två veckorna.",
    "console.booking.email": "Kundens e-post (frivillig)",
    "console.booking.phone": "Kundens mobilnummer (frivilligt)",
    "console.booking.messages": "Meddelandenas språk",
    "console.booking.book": "Boka",
    "console.booking.booked": "Bokad {when}. Bokningskod:",
    "console.error.slot_taken": "Tiden blev just bokad. Välj en annan tid.",
    "console.error.no_interpreter": "Ingen tolk är ledig vid den här tiden. Välj en annan tid.",
    "console.error.bad_email": "E-postadressen duger inte.",
    "console.error.bad_phone": "Telefonnumret duger inte.",
  },
  en: {
    "console.booking.title": "Book a time for a customer",
    "console.booking.authority": "Authority",
    "console.booking.service": "Matter",
    "console.booking.language": "Language of service",
    "console.booking.interpreting": "Interpreter",
    "console.booking.noInterpreter": "No interpreter",
    "console.booking.remote": "The customer joins from home by video",
    "console.booking.slot": "Free time",
    "console.booking.noSlots": "No free times in the next two weeks.",
    "console.booking.email": "Customer's e-mail (optional)",
    "console.booking.phone": "Customer's mobile number (optional)",
    "console.booking.messages": "Language of messages",
    "console.booking.book": "Book",
    "console.booking.booked": "Booked for {when}. Booking code:",
    "console.error.slot_taken": "The time was just taken. Choose another.",
    "console.error.no_interpreter": "No interpreter is free at this time. Choose another.",
    "console.error.bad_email": "The e-mail address is not valid.",
    "console.error.bad_phone": "The phone number is not valid.",
  },
});

const LOCALES = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" };
const when = (iso) => new Date(iso).toLocaleString(LOCALES[language()], {
  timeZone: "Europe/Helsinki", weekday: "short", day: "numeric", month: "numeric",
  hour: "2-digit", minute: "2-digit",
});

function field(id, labelKey, control) {
  control.id = id;
  return el("div", { class: "field" }, el("label", { for: id, "data-i18n": labelKey, text: t(labelKey) }), control);
}

function options(select, items, keep = true) {
  const chosen = select.value;
  select.replaceChildren(...items.map(([value, text]) => el("option", { value, text })));
  if (keep && items.some(([v]) => v === chosen)) select.value = chosen;
}

/** Mount the booking box into `container` (once); returns {refresh} for language changes. */
export function mountClerkBooking(container, getSocket) {
  const s = {
    authority: el("select", { required: "" }),
    service: el("select", { required: "" }),
    language: el("select", { required: "" }),
    interpreting: el("select"),
    remote: el("input", { type: "checkbox" }),
    slot: el("select", { required: "" }),
    email: el("input", { type: "email", autocomplete: "off", maxlength: "254" }),
    phone: el("input", { type: "tel", autocomplete: "off", maxlength: "32" }),
    messages: el("select"),
  };
  const slotHelp = el("p", { class: "help", id: "clerk-book-slot-help", "aria-live": "polite" });
  s.slot.setAttribute("aria-describedby", "clerk-book-slot-help");
  const error = el("p", { id: "clerk-book-error", class: "banner error", role: "alert", hidden: "" });
  const result = el("div", { id: "clerk-book-result", class: "banner info booking-result", role: "status",
                             "aria-live": "polite", hidden: "" });
  const submit = el("button", { type: "submit", "data-i18n": "console.booking.book", text: t("console.booking.book") });
  s.remote.id = "clerk-book-remote";
  const form = el("form", { id: "clerk-book-form", class: "grid-form" },
    field("clerk-book-authority", "console.booking.authority", s.authority),
    field("clerk-book-service", "console.booking.service", s.service),
    field("clerk-book-language", "console.booking.language", s.language),
    field("clerk-book-interpreting", "console.booking.interpreting", s.interpreting),
    el("div", { class: "field checkbox" }, s.remote,
       el("label", { for: "clerk-book-remote", "data-i18n": "console.booking.remote", text: t("console.booking.remote") })),
    el("div", { class: "field" }, el("label", { for: "clerk-book-slot", "data-i18n": "console.booking.slot",
                                                text: t("console.booking.slot") }), s.slot, slotHelp),
    field("clerk-book-email", "console.booking.email", s.email),
    field("clerk-book-phone", "console.booking.phone", s.phone),
    field("clerk-book-messages", "console.booking.messages", s.messages),
    el("div", { class: "field form-submit" }, submit));
  s.slot.id = "clerk-book-slot";
  const box = el("section", { id: "clerk-booking", class: "desk-box", "aria-labelledby": "clerk-booking-title" },
    el("h2", { id: "clerk-booking-title", "data-i18n": "console.booking.title", text: t("console.booking.title") }),
    form, error, result);
  container.append(box);

  let offer = null;
  let slots = [];
  let officeId = null;
  let lastBooking = null;

  const current = () => (offer?.authorities || []).find((a) => a.code === s.authority.value);

  function render() {
    if (!offer) return;
    options(s.authority, offer.authorities.map((a) => [a.code, localName(a)]));
    const a = current();
    options(s.service, (a?.service_types || []).map((x) => [x.code, localName(x)]));
    options(s.language, (a?.languages || []).map((c) => [c, languageName(c)]));
    options(s.interpreting, [["", t("console.booking.noInterpreter")],
                             ...offer.interpreting.map((c) => [c, languageName(c)])]);
    options(s.messages, [["fi", "Suomi"], ["sv", "Svenska"], ["en", "English"]]);
    if (!s.messages.dataset.touched) s.messages.value = language();
    options(s.slot, slots.map((x) => [x.starts_at, when(x.starts_at)]));
    slotHelp.textContent = slots.length ? "" : t("console.booking.noSlots");
    if (lastBooking) showResult(lastBooking);
  }

  async function loadSlots() {
    const a = current();
    if (!a || !officeId) return;
    const ack = await request(getSocket(), "booking:slots", {
      office_id: officeId, authority: a.code, language: s.language.value, days: 14,
      // With an interpreting need only the times an interpreter is free (issue 17).
      interpreting: s.interpreting.value || null,
    });
    slots = ack.slots;
    render();
  }

  function showResult(appointment) {
    result.replaceChildren(
      el("span", { text: t("console.booking.booked", { when: when(appointment.starts_at) }) }),
      el("strong", { class: "booking-code", text: appointment.code }));
    result.dataset.code = appointment.code;
    result.hidden = false;
  }

  async function book(event) {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const ack = await request(getSocket(), "booking:book", {
        office_id: officeId,
        authority: s.authority.value,
        service_type: s.service.value,
        language: s.language.value,
        interpreting: s.interpreting.value || null,
        remote: s.remote.checked,
        starts_at: s.slot.value,
        contact_email: s.email.value.trim() || null,
        contact_phone: s.phone.value.trim() || null,
        message_language: s.messages.value,
      });
      lastBooking = ack.appointment;
      s.email.value = "";
      s.phone.value = "";
      showResult(lastBooking);
      await loadSlots();
    } catch (e) {
      error.textContent = errorText(e);
      error.hidden = false;
      if (e.reason === "slot_taken" || e.reason === "no_interpreter") await loadSlots().catch(() => {});
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener("submit", book);
  s.authority.addEventListener("change", () => { render(); loadSlots().catch(() => {}); });
  s.language.addEventListener("change", () => loadSlots().catch(() => {}));
  s.interpreting.addEventListener("change", () => loadSlots().catch(() => {}));
  s.messages.addEventListener("change", () => { s.messages.dataset.touched = "1"; });
  onLanguageChange(render);

  return {
    async load() {
      const ack = await request(getSocket(), "booking:offer", {});
      offer = ack.offer;
      officeId = offer ? offer.office.id : null;
      render();
      await loadSlots();
    },
  };
}
