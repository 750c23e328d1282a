// Words for the kiosk's device self-test (signaling/flow/kiosk_health.py), shared by the clerk's
// console (expert_console/static/js/kiosk-health.js) and the administrator's pages
// (signaling/static/admin/kiosk-health.js).
//
//   failureText({check: "camera", code: "camera_missing"})  →  "Camera: missing"
//   resultText(kiosk)  →  "OK" | "Not tested yet" | "Camera: missing; Relay: not working"

import { addStrings, t } from "./i18n.js";

export const CHECKS = ["camera", "microphone", "speaker", "relay"];

addStrings({
  fi: {
    "kioskHealth.check.camera": "Kamera", "kioskHealth.check.microphone": "Mikrofoni",
    "kioskHealth.check.speaker": "Kaiutin", "kioskHealth.check.relay": "Yhteys mediapalvelimeen",
    "kioskHealth.reason.missing": "puuttuu", "kioskHealth.reason.denied": "ei käyttölupaa",
    "kioskHealth.reason.busy": "toinen ohjelma käyttää", "kioskHealth.reason.broken": "ei toimi",
    "kioskHealth.ok": "Kunnossa", "kioskHealth.untested": "Ei vielä testattu",
    "kioskHealth.fails": "Vika: {list}",
  },
  sv: {
    "kioskHealth.check.camera": "Kamera", "kioskHealth.check.microphone": "Mikrofon",
    "kioskHealth.check.speaker": "Högtalare", "kioskHealth.check.relay": "Förbindelse till medieservern",
    "kioskHealth.reason.missing": "saknas", "kioskHealth.reason.denied": "ingen behörighet",
    "kioskHealth.reason.busy": "används av ett annat program", "kioskHealth.reason.broken": "fungerar inte",
    "kioskHealth.ok": "I ordning", "kioskHealth.untested": "Inte testad ännu",
    "kioskHealth.fails": "Fel: {list}",
  },
  en: {
    "kioskHealth.check.camera": "Camera", "kioskHealth.check.microphone": "Microphone",
    "kioskHealth.check.speaker": "Speaker", "kioskHealth.check.relay": "Connection to the media relay",
    "kioskHealth.reason.missing": "missing", "kioskHealth.reason.denied": "not permitted",
    "kioskHealth.reason.busy": "in use by another program", "kioskHealth.reason.broken": "not working",
    "kioskHealth.ok": "OK", "kioskHealth.untested": "Not tested yet",
    "kioskHealth.fails": "Fails: {list}",
  },
});

/** What kind of failure a check's code says (the codes of endpoint/static/kiosk/self-test.js). */
function reasonOf(code) {
  if (/_missing$/.test(code)) return "missing";
  if (/_denied$/.test(code)) return "denied";
  if (/_busy$/.test(code)) return "busy";
  return "broken";
}

export function failureText({ check, code }) {
  const name = CHECKS.includes(check) ? t(`kioskHealth.check.${check}`) : String(check);
  return `${name}: ${t(`kioskHealth.reason.${reasonOf(String(code || ""))}`)}`;
}

export function resultText(kiosk) {
  if (!kiosk.tested_at) return t("kioskHealth.untested");
  if (!kiosk.failures || !kiosk.failures.length) return t("kioskHealth.ok");
  return t("kioskHealth.fails", { list: kiosk.failures.map(failureText).join("; ") });
}
