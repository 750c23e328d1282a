// The clerk's warnings about his office's kiosks (issue 18): a kiosk whose device self-test
// failed (endpoint/static/kiosk/self-test.js) shows as a warning per kiosk, e.g. "Aula: Camera:
// missing", as soon as the kiosk reports it (`kiosk:self_test`), and again after a reload
// (`selftest:office`). The customer is not stopped: a kiosk without a camera still gives tickets.
//
//   const health = new KioskHealth(socket, document.getElementById("kiosk-health-list"));

import { addStrings, formatDateTime, onLanguageChange, t } from "/static/common/js/i18n.js";
import { failureText } from "/static/common/js/kiosk-health.js";
import { el } from "/static/common/js/dom.js";

addStrings({
  fi: { "console.kioskHealth.title": "Kioskien laitetesti",
        "console.kioskHealth.allOk": "Kaikki kioskit läpäisivät viimeisimmän laitetestin.",
        "console.kioskHealth.warning": "{kiosk}: {list} (testattu {time})" },
  sv: { "console.kioskHealth.title": "Kioskernas enhetstest",
        "console.kioskHealth.allOk": "Alla kiosker klarade det senaste enhetstestet.",
        "console.kioskHealth.warning": "{kiosk}: {list} (testad {time})" },
  en: { "console.kioskHealth.title": "Kiosk self-test",
        "console.kioskHealth.allOk": "Every kiosk passed its latest self-test.",
        "console.kioskHealth.warning": "{kiosk}: {list} (tested {time})" },
});

export class KioskHealth {
  constructor(socket, list) {
    this.socket = socket;
    this.list = list;
    this.kiosks = new Map(); // endpoint id -> view
    this.loaded = false;
    socket.on("kiosk:self_test", (view) => {
      this.kiosks.set(view.endpoint_id, view);
      this.render();
    });
    socket.on("connect", () => this.load());
    onLanguageChange(() => this.render());
    if (socket.connected) this.load();
  }

  load() {
    this.socket.emit("selftest:office", {}, (ack) => {
      if (!ack || !ack.ok) return;
      this.kiosks = new Map(ack.kiosks.map((k) => [k.endpoint_id, k]));
      this.loaded = true;
      this.render();
    });
  }

  render() {
    const failing = [...this.kiosks.values()].filter((k) => k.failures && k.failures.length);
    if (!failing.length) {
      this.list.replaceChildren(el("li", { class: "empty", "data-testid": "kiosk-health-ok",
                                           text: this.loaded ? t("console.kioskHealth.allOk") : "" }));
      return;
    }
    this.list.replaceChildren(...failing.map((k) => el("li", {
      class: "kiosk-health-warning warn", "data-endpoint": String(k.endpoint_id),
      "data-codes": k.failures.map((f) => f.code).join(" "),
      text: t("console.kioskHealth.warning", {
        kiosk: k.endpoint_name, list: k.failures.map(failureText).join("; "),
        time: formatDateTime(k.tested_at) }),
    })));
  }
}
