// The interpreter's booked reservations (issue 17): the appointments he is reserved for, from
// `interpreter:reservations`; refreshed when the server says they changed
// (`interpreter:reservations_changed`) and after every reconnect (signaling/flow/interpreter_reservations.py).
import {
  addStrings, formatDateTime, language, languageName, localName, onLanguageChange, t,
} from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";
import { request } from "./session.js";

addStrings({
  fi: {
    "console.reservations.title": "Varatut tulkkaukset",
    "console.reservations.empty": "Ei varattuja tulkkauksia seuraavan neljän viikon aikana.",
    "console.reservations.item": "{when}–{end}: {language}, {authority}, {office}",
    "console.reservations.remote": "asiakas etänä",
  },
  sv: {
    "console.reservations.title": "Bokade tolkningar",
    "console.reservations.empty": "Inga bokade tolkningar de närmaste fyra veckorna.",
    "console.reservations.item": "{when}–{end}: {language}, {authority}, {office}",
    "console.reservations.remote": "kunden på distans",
  },
  en: {
    "console.reservations.title": "Booked interpreting",
    "console.reservations.empty": "No booked interpreting in the next four weeks.",
    "console.reservations.item": "{when}–{end}: {language}, {authority}, {office}",
    "console.reservations.remote": "customer remote",
  },
});

/** Fill `list` (a <ul>) with his reservations; `socket()` gives the current socket. */
export function mountReservations(list, socket) {
  let items = [];

  function render() {
    list.replaceChildren();
    if (!items.length) {
      list.append(el("li", { class: "empty", text: t("console.reservations.empty") }));
      return;
    }
    for (const item of items) {
      const locale = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" }[language()];
      const end = new Date(item.ends_at).toLocaleTimeString(locale, { timeStyle: "short" });
      const text = t("console.reservations.item", {
        when: formatDateTime(item.starts_at), end, language: languageName(item.language),
        authority: localName({ name: item.authority_name }), office: item.office_name,
      });
      list.append(el("li", { "data-reservation": String(item.id) },
        el("span", { text: item.remote ? `${text} (${t("console.reservations.remote")})` : text })));
    }
  }

  async function load() {
    try {
      items = (await request(socket(), "interpreter:reservations", {})).items;
    } catch {
      items = [];
    }
    render();
  }

  onLanguageChange(render);
  return { load, render };
}
