// Customers at home waiting for the expert (issue 18; signaling/flow/remote_customer.py): a list
// above the queues with an "Admit" button each, and a notice when one arrives. Admitting
// makes the call; the console enters it through its ordinary `call:started` push. A customer
// who dropped out of the expert's call and waits again (`returning`) is also shown in the call
// view ("The customer is waiting again", `#remote-returned`) and over his (now black) video
// tile (`#remote-tile-returned`, with the admit button), and admitting him puts him back into
// the same call. Each row also says how his device check on the /join page went (`check`,
// fixed codes reported by his page: "Yhteystesti: TURN ei toimi"), so the expert knows
// before admitting him whether his camera, sound or network may be trouble.
//
//   mountRemoteCustomers(socket, { notify, errorText });   // once per log-in, experts only

import { addStrings, formatDateTime, languageName, onLanguageChange, t } from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";
import { request } from "./session.js";

addStrings({
  fi: {
    "remote.title": "Etäasiakkaat odottavat",
    "remote.none": "Kukaan ei odota kotoa.",
    "remote.admit": "Päästä puheluun",
    "remote.arrived": "Etäasiakas odottaa (varattu {when}).",
    "remote.online": "paikalla",
    "remote.offline": "ei yhteyttä",
    "remote.identified": "tunnistettu",
    "remote.notIdentified": "ei tunnistettu",
    "remote.row": "{when} · {service} · {language}",
    "remote.returned": "Asiakas odottaa taas",
    "remote.admitAgain": "Päästä takaisin puheluun",
    "remote.tileReturned": "Asiakas odottaa taas – päästä takaisin",
    "remote.check": "Yhteystesti: {result}",
    "remote.check.ok": "ok",
    "remote.check.blocked": "kamera ja mikrofoni estetty",
    "remote.check.camera": "kamera ei toimi",
    "remote.check.microphone": "mikrofoni ei toimi",
    "remote.check.silent": "mikrofonista ei kuulu ääntä",
    "remote.check.speaker": "kaiutin ei kuulu",
    "remote.check.relay": "yhteys palveluun ei toimi",
    "remote.check.turn": "TURN ei toimi",
  },
  sv: {
    "remote.title": "Distanskunder väntar",
    "remote.none": "Ingen väntar hemifrån.",
    "remote.admit": "Släpp in i samtalet",
    "remote.arrived": "En distanskund väntar (bokad {when}).",
    "remote.online": "på plats",
    "remote.offline": "ingen förbindelse",
    "remote.identified": "identifierad",
    "remote.notIdentified": "inte identifierad",
    "remote.row": "{when} · {service} · {language}",
    "remote.returned": "Kunden väntar igen",
    "remote.admitAgain": "Släpp tillbaka in i samtalet",
    "remote.tileReturned": "Kunden väntar igen – släpp tillbaka in",
    "remote.check": "Anslutningstest: {result}",
    "remote.check.ok": "ok",
    "remote.check.blocked": "kamera och mikrofon blockerade",
    "remote.check.camera": "kameran fungerar inte",
    "remote.check.microphone": "mikrofonen fungerar inte",
    "remote.check.silent": "inget ljud från mikrofonen",
    "remote.check.speaker": "högtalaren hörs inte",
    "remote.check.relay": "anslutningen till tjänsten fungerar inte",
    "remote.check.turn": "TURN fungerar inte",
  },
  en: {
    "remote.title": "Customers at home waiting",
    "remote.none": "Nobody is waiting from home.",
    "remote.admit": "Admit to the call",
    "remote.arrived": "A customer at home is waiting (booked {when}).",
    "remote.online": "present",
    "remote.offline": "not connected",
    "remote.identified": "identified",
    "remote.notIdentified": "not identified",
    "remote.row": "{when} · {service} · {language}",
    "remote.returned": "The customer is waiting again",
    "remote.admitAgain": "Let back into the call",
    "remote.tileReturned": "The customer is waiting again – let them back in",
    "remote.check": "Connection check: {result}",
    "remote.check.ok": "ok",
    "remote.check.blocked": "camera and microphone blocked",
    "remote.check.camera": "camera not working",
    "remote.check.microphone": "microphone not working",
    "remote.check.silent": "no sound from the microphone",
    "remote.check.speaker": "speaker not heard",
    "remote.check.relay": "connection to the service failed",
    "remote.check.turn": "TURN not working",
  },
});

/** What failed in his device check (keys of `remote.check.*`), [] when all went well; null
 * when his page reported none. A microphone not yet measured or a speaker not tried is no
 * failure: nothing says they do not work. */
export function checkProblems(check) {
  if (!check) return null;
  const problems = [];
  if (check.camera === "blocked" || check.microphone === "blocked") problems.push("blocked");
  else {
    if (check.camera !== "ok") problems.push("camera");
    if (check.microphone === "silent") problems.push("silent");
    else if (check.microphone === "failed") problems.push("microphone");
  }
  if (check.speaker === "failed") problems.push("speaker");
  if (check.relay !== "ok") problems.push("relay");
  if (check.turn === "failed") problems.push("turn");
  return problems;
}

function checkLine(check) {
  const problems = checkProblems(check);
  if (problems === null) return null;
  const result = problems.length ? problems.map((key) => t(`remote.check.${key}`)).join(", ")
    : t("remote.check.ok");
  return el("p", { class: "help remote-check", "data-testid": "remote-check",
                   "data-problems": problems.join(" ") || "none",
                   text: t("remote.check", { result }) });
}

export function mountRemoteCustomers(socket, { notify = () => {}, errorText = (e) => e.message } = {}) {
  const queues = document.getElementById("view-queues");
  if (!queues || document.getElementById("remote-customers")) return null;
  const list = el("ul", { class: "card-list", id: "remote-customer-list", "aria-live": "polite" });
  const title = el("h3", { id: "remote-customers-title" });
  const box = el("section", { id: "remote-customers", class: "remote-customers",
                              "aria-labelledby": "remote-customers-title", hidden: "" }, title, list);
  const anchor = document.getElementById("queues");
  if (anchor) anchor.before(box);
  else queues.append(box);
  // In the call view: the customer of this call back in the waiting room.
  const returned = el("div", { id: "remote-returned", class: "remote-returned", role: "status",
                               "aria-live": "polite", hidden: "" });
  const callHead = document.querySelector("#view-call .call-head");
  if (callHead) callHead.append(returned);
  // Over his video tile, which went black when he dropped out: the banner alone is missed by
  // an expert who looks at the picture. Not a live region: the banner announces it already.
  const tileReturned = el("div", { id: "remote-tile-returned", class: "remote-tile-returned",
                                   hidden: "" });
  document.getElementById("tile-customer")?.append(tileReturned);
  const waiting = new Map(); // appointment id -> view

  function render() {
    title.textContent = t("remote.title");
    box.hidden = waiting.size === 0;
    list.replaceChildren();
    const back = [...waiting.values()].filter((view) => view.returning);
    returned.hidden = back.length === 0;
    returned.replaceChildren(...back.map((view) => el("p", {},
      el("strong", { text: t("remote.returned") }), " ",
      admitButton(view, "remote-readmit", "remote.admitAgain"))));
    // Only this expert's own call's customer comes back to him, so one at most in practice.
    tileReturned.hidden = back.length === 0;
    tileReturned.replaceChildren(...back.slice(0, 1).map((view) => {
      const button = admitButton(view, "remote-tile-readmit", "remote.admitAgain");
      button.classList.add("primary-action");
      // Not the tile's own click (call-controls.js: a thumbnail click swaps the main view).
      button.addEventListener("click", (event) => event.stopPropagation());
      return el("div", {}, el("p", { class: "remote-tile-text", text: t("remote.tileReturned") }),
                button);
    }));
    for (const view of [...waiting.values()].sort((a, b) => a.starts_at.localeCompare(b.starts_at))) {
      const button = admitButton(view, "remote-admit", "remote.admit");
      button.classList.add("primary-action");
      const facts = [view.online ? t("remote.online") : t("remote.offline"),
                     view.identified ? t("remote.identified") : t("remote.notIdentified")];
      if (view.returning) facts.unshift(t("remote.returned"));
      list.append(el("li", { class: "card", "data-appointment": String(view.appointment_id),
                             "data-online": String(view.online) },
        el("p", { text: t("remote.row", { when: formatDateTime(view.starts_at),
                                            service: view.service_type,
                                            language: languageName(view.language) }) }),
        el("p", { class: "help", text: facts.join(" · ") }),
        ...[checkLine(view.check)].filter(Boolean),
        button));
    }
  }

  function admitButton(view, testid, words) {
    const button = el("button", {
      type: "button", text: t(words), "data-appointment": String(view.appointment_id),
      "data-testid": testid, onclick: () => admit(view, button),
    });
    if (!view.online) button.disabled = true;
    return button;
  }

  async function admit(view, button) {
    button.disabled = true;
    try {
      await request(socket, "remote:admit", { appointment_id: view.appointment_id });
      waiting.delete(view.appointment_id);
      render();
    } catch (error) {
      notify(errorText(error), "warn");
      button.disabled = false;
    }
  }

  function update(view) {
    const known = waiting.get(view.appointment_id);
    if (view.admitted) waiting.delete(view.appointment_id);
    else waiting.set(view.appointment_id, view);
    if (!view.admitted && view.online && !(known && known.online)) {
      const text = view.returning ? t("remote.returned")
        : t("remote.arrived", { when: formatDateTime(view.starts_at) });
      notify(text, view.returning ? "warn" : "info", { tag: "remote" });
    }
    render();
  }

  async function reload() {
    try {
      const ack = await request(socket, "remote:list", {});
      waiting.clear();
      for (const view of ack.waiting) waiting.set(view.appointment_id, view);
      render();
    } catch (error) {
      console.warn("remote:list", error);
    }
  }

  socket.on("remote:waiting", ({ customer }) => update(customer));
  socket.on("call:ended", reload); // whoever waited to get back into it does not any more
  socket.on("connect", reload);
  if (socket.connected) reload();
  onLanguageChange(render);
  return { reload, box };
}
