// The administrator's view of the kiosks' device self-test (issue 18): per office, each kiosk
// with the time and result of its latest self-test; a failing kiosk's row is highlighted.
// `GET /api/admin/kiosk-health` (signaling/flow/kiosk_health.py).
//
//   await loadKioskHealth(document.getElementById("kiosk-health-list"));

import { addStrings, formatDateTime, onLanguageChange, t } from "/static/common/js/i18n.js";
import { resultText } from "/static/common/js/kiosk-health.js";
import { api } from "/static/console/js/session.js";
import { el } from "/static/common/js/dom.js";

addStrings({
  fi: { "admin.kioskHealth.title": "Kioskien laitetesti",
        "admin.kioskHealth.help": "Kioski testaa kameransa, mikrofoninsa, kaiuttimensa ja yhteyden mediapalvelimeen käynnistyessään ja {hours} tunnin välein.",
        "admin.kioskHealth.kiosk": "Kioski", "admin.kioskHealth.testedAt": "Viimeisin testi",
        "admin.kioskHealth.result": "Tulos", "admin.kioskHealth.none": "Ei kioskeja." },
  sv: { "admin.kioskHealth.title": "Kioskernas enhetstest",
        "admin.kioskHealth.help": "Kiosken testar sin kamera, mikrofon, högtalare och förbindelsen till medieservern när den startar och var {hours}:e timme.",
        "admin.kioskHealth.kiosk": "Kiosk", "admin.kioskHealth.testedAt": "Senaste test",
        "admin.kioskHealth.result": "Resultat", "admin.kioskHealth.none": "Inga kiosker." },
  en: { "admin.kioskHealth.title": "Kiosk self-test",
        "admin.kioskHealth.help": "A kiosk tests its camera, microphone, speaker and its connection to the media relay when it starts and every {hours} h.",
        "admin.kioskHealth.kiosk": "Kiosk", "admin.kioskHealth.testedAt": "Latest test",
        "admin.kioskHealth.result": "Result", "admin.kioskHealth.none": "No kiosks." },
});

let shown = null; // {container, data}

function render() {
  if (!shown) return;
  const { container, data } = shown;
  const hours = Math.round((data.self_test_seconds || 3600) / 360) / 10;
  const parts = [el("p", { class: "help", text: t("admin.kioskHealth.help", { hours }) })];
  if (!data.offices.length) parts.push(el("p", { text: t("admin.kioskHealth.none") }));
  for (const office of data.offices) {
    const head = el("tr", {}, ...["admin.kioskHealth.kiosk", "admin.kioskHealth.testedAt",
      "admin.kioskHealth.result"].map((key) => el("th", { scope: "col", text: t(key) })));
    const rows = office.kiosks.map((k) => {
      const failing = Boolean(k.failures && k.failures.length);
      return el("tr", { class: failing ? "broken-row kiosk-failing" : "", "data-endpoint": String(k.endpoint_id),
                        "data-ok": k.ok === null ? "" : String(k.ok) },
        el("td", { "data-label": t("admin.kioskHealth.kiosk"), text: k.endpoint_name }),
        el("td", { "data-label": t("admin.kioskHealth.testedAt"),
                   text: k.tested_at ? formatDateTime(k.tested_at) : "–" }),
        el("td", { "data-label": t("admin.kioskHealth.result"), class: failing ? "state-off" : "",
                   text: resultText(k) }));
    });
    const id = `kiosk-health-office-${office.id}`;
    parts.push(el("section", { class: "kiosk-health-office", "aria-labelledby": id, "data-office": String(office.id) },
      el("h4", { id, text: office.name }),
      el("div", { class: "table-wrap stacked" },
        el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)))));
  }
  container.replaceChildren(...parts);
}

onLanguageChange(() => render());

export async function loadKioskHealth(container) {
  const data = await api("/api/admin/kiosk-health");
  shown = { container, data };
  render();
  return data;
}
