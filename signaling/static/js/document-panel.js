// The documents panel of a call: send with a file picker, a progress bar and cancel; the list
// of received documents with a "verified" mark; view and print at the kiosk, save at the
// console; the safety codes (key fingerprints) to compare aloud.
//
// Mounted by the kiosk and the consoles:
//   const panel = mountDocumentPanel(container, {socket, call, participantId, role});
//   ...; panel.destroy();
// role "customer" (kiosk) gets view + print in the kiosk's own viewer (doc-viewer.js: PDF.js into
// canvas, images in an <img>, no blob: link, no save); others (expert, interpreter) get view +
// save. Options (all optional; the defaults keep the consoles as they were):
//   sending: false — no file picker, no send button, no type/size note (the kiosk: a document
//                    from the customer goes through the clerk's document camera instead)
//   codesOnRequest  — the safety codes behind a "Show safety code" button (default at the
//                    kiosk), in large digits
// A document goes to the people ticked under "Recipients": the customer and the expert by
// default, an interpreter only when ticked; a device (the document camera) is never listed.

import { addStrings, language, onLanguageChange, t } from "./i18n.js";
import { DEFAULT_RECIPIENT_ROLES, DocumentChannel } from "./document-channel.js";
import { ALLOWED_TYPES } from "./document-crypto.js";
import { closeAllViewers, openDocumentViewer, printDocument } from "./doc-viewer.js";
import { CallChat, mountChat } from "./chat.js";

const ERROR_CODES = [
  "bad_header", "not_a_recipient", "wrong_key", "commitment", "header_mac", "metadata",
  "type_not_allowed", "too_large", "truncated", "trailing_data", "chunk_auth", "hash_mismatch",
  "type_mismatch", "sender_mismatch", "cancelled", "unavailable", "no_recipients", "other",
];

const ERRORS = {
  fi: ["Tiedosto on vahingoittunut tai väärää muotoa.", "Asiakirjaa ei salattu sinulle.",
       "Asiakirjaa ei voi avata avaimellasi.", "Asiakirjan avain ei täsmää.",
       "Asiakirjan tietoja on muutettu.", "Asiakirjan kuvaus on vahingoittunut.",
       "Tiedostotyyppi ei ole sallittu (vain PDF, JPEG, PNG, TIFF).",
       "Asiakirja on liian suuri.", "Asiakirja on vajaa: osa puuttuu.",
       "Asiakirjan perässä on ylimääräistä tietoa.",
       "Osa asiakirjasta on vahingoittunut, puuttuu tai on väärässä järjestyksessä.",
       "Asiakirjan sisältö ei vastaa tarkistussummaa.", "Sisältö ei ole ilmoitettua tyyppiä.",
       "Lähettäjän avain ei ole palvelimen vahvistama.", "Siirto peruttiin.",
       "Yhteys katkesi, siirto ei onnistunut.", "Kukaan muu ei ole vielä mukana.",
       "Siirto epäonnistui."],
  sv: ["Filen är skadad eller har fel format.", "Dokumentet krypterades inte för dig.",
       "Dokumentet kan inte öppnas med din nyckel.", "Dokumentets nyckel stämmer inte.",
       "Dokumentets uppgifter har ändrats.", "Dokumentets beskrivning är skadad.",
       "Filtypen är inte tillåten (endast PDF, JPEG, PNG, TIFF).",
       "Dokumentet är för stort.", "Dokumentet är ofullständigt: en del saknas.",
       "Det finns extra data efter dokumentet.",
       "En del av dokumentet är skadad, saknas eller är i fel ordning.",
       "Dokumentets innehåll stämmer inte med kontrollsumman.",
       "Innehållet är inte av den angivna typen.",
       "Avsändarens nyckel är inte bekräftad av servern.", "Överföringen avbröts.",
       "Anslutningen bröts, överföringen misslyckades.", "Ingen annan är med ännu.",
       "Överföringen misslyckades."],
  en: ["The file is damaged or not in the right format.",
       "This document was not encrypted for you.", "The document cannot be opened with your key.",
       "The document key does not match.", "The document's details have been altered.",
       "The document's description is damaged.",
       "This file type is not allowed (PDF, JPEG, PNG, TIFF only).",
       "The document is too large.", "The document is incomplete: part of it is missing.",
       "There is extra data after the document.",
       "Part of the document is damaged, missing or out of order.",
       "The document's content does not match its checksum.",
       "The content is not of the type it claims.",
       "The sender's key is not the one the server confirmed.", "The transfer was cancelled.",
       "The connection broke; the transfer failed.", "Nobody else has joined yet.",
       "The transfer failed."],
};

const STRINGS = {
  fi: {
    "documents.title": "Asiakirjat",
    "documents.to": "Vastaanottajat",
    "documents.noneChosen": "Valitse vähintään yksi vastaanottaja.",
    "documents.choose": "Valitse tiedosto",
    "documents.send": "Lähetä",
    "documents.cancel": "Peruuta",
    "documents.sending": "Lähetetään: {name}",
    "documents.receiving": "Vastaanotetaan asiakirjaa…",
    "documents.sent": "Lähetetty: {name}",
    "documents.delivered": "Perillä ✓",
    "documents.refusedBy": "Vastaanottaja hylkäsi: {reason}",
    "documents.received": "Vastaanotetut asiakirjat",
    "documents.none": "Ei vielä asiakirjoja.",
    "documents.verified": "✓ Varmennettu — lähettäjä {name}",
    "documents.view": "Näytä",
    "documents.print": "Tulosta",
    "documents.save": "Tallenna",
    "documents.close": "Sulje",
    "documents.noPreview": "Tätä tiedostoa ei voi näyttää selaimessa.",
    "documents.codes": "Turvakoodit — vertailkaa ääneen",
    "documents.yourCode": "Sinun koodisi",
    "documents.allowed": "PDF, JPEG, PNG tai TIFF, enintään {mb} Mt",
    "documents.refused": "Hylätty asiakirja: {reason}",
    "documents.showCodes": "Näytä turvakoodi",
    "documents.hideCodes": "Piilota turvakoodi",
    "documents.codesHelp": "Asiantuntija voi pyytää sinua lukemaan koodin ääneen. Koodit ovat samat molemmilla, kun yhteys on turvallinen.",
    "documents.notice": "Sait asiakirjan",
  },
  sv: {
    "documents.title": "Dokument",
    "documents.to": "Mottagare",
    "documents.noneChosen": "Välj minst en mottagare.",
    "documents.choose": "Välj fil",
    "documents.send": "Skicka",
    "documents.cancel": "Avbryt",
    "documents.sending": "Skickar: {name}",
    "documents.receiving": "Tar emot dokument…",
    "documents.sent": "Skickat: {name}",
    "documents.delivered": "Levererat ✓",
    "documents.refusedBy": "Mottagaren avvisade: {reason}",
    "documents.received": "Mottagna dokument",
    "documents.none": "Inga dokument ännu.",
    "documents.verified": "✓ Verifierat — avsändare {name}",
    "documents.view": "Visa",
    "documents.print": "Skriv ut",
    "documents.save": "Spara",
    "documents.close": "Stäng",
    "documents.noPreview": "Den här filen kan inte visas i webbläsaren.",
    "documents.codes": "Säkerhetskoder — jämför dem högt",
    "documents.yourCode": "Din kod",
    "documents.allowed": "PDF, JPEG, PNG eller TIFF, högst {mb} MB",
    "documents.refused": "Avvisat dokument: {reason}",
    "documents.showCodes": "Visa säkerhetskoden",
    "documents.hideCodes": "Dölj säkerhetskoden",
    "documents.codesHelp": "Den sakkunniga kan be dig läsa koden högt. Koderna är desamma hos er båda när förbindelsen är säker.",
    "documents.notice": "Du fick ett dokument",
  },
  en: {
    "documents.title": "Documents",
    "documents.to": "Recipients",
    "documents.noneChosen": "Choose at least one recipient.",
    "documents.choose": "Choose a file",
    "documents.send": "Send",
    "documents.cancel": "Cancel",
    "documents.sending": "Sending: {name}",
    "documents.receiving": "Receiving a document…",
    "documents.sent": "Sent: {name}",
    "documents.delivered": "Delivered ✓",
    "documents.refusedBy": "The recipient refused it: {reason}",
    "documents.received": "Received documents",
    "documents.none": "No documents yet.",
    "documents.verified": "✓ Verified — from {name}",
    "documents.view": "View",
    "documents.print": "Print",
    "documents.save": "Save",
    "documents.close": "Close",
    "documents.noPreview": "This file cannot be shown in the browser.",
    "documents.codes": "Safety codes — compare them aloud",
    "documents.yourCode": "Your code",
    "documents.allowed": "PDF, JPEG, PNG or TIFF, at most {mb} MB",
    "documents.refused": "Refused document: {reason}",
    "documents.showCodes": "Show safety code",
    "documents.hideCodes": "Hide safety code",
    "documents.codesHelp": "The expert may ask you to read the code aloud. The codes are the same on both sides when the connection is safe.",
    "documents.notice": "You received a document",
  },
};
for (const lang of Object.keys(ERRORS)) {
  ERROR_CODES.forEach((code, i) => { STRINGS[lang][`documents.error.${code}`] = ERRORS[lang][i]; });
}
addStrings(STRINGS);

// The panel carries its own few rules, so it looks right wherever it is mounted; pages may
// override them (all are scoped to .document-panel).
const STYLE = `
.document-panel { display: grid; gap: .6rem; font-size: 1.05rem; }
.document-panel [hidden] { display: none !important; }
.document-panel .documents-send-row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
.document-panel input[type=file] { position: absolute; width: 1px; height: 1px; opacity: 0; }
.document-panel input[type=file]:focus-visible + * , .document-panel .documents-choose:focus-within { outline: 3px solid #1a5fb4; }
.document-panel button, .document-panel .documents-choose, .document-panel a.button {
  min-height: 44px; padding: .5rem 1rem; border-radius: .4rem; border: 1px solid #555;
  background: #f4f4f4; color: #111; cursor: pointer; font: inherit; text-decoration: none;
  display: inline-flex; align-items: center; }
.document-panel .documents-send { background: #1a5fb4; color: #fff; border-color: #1a5fb4; }
.document-panel .documents-send:disabled { opacity: .5; cursor: default; }
.document-panel progress { width: 100%; height: 1.2rem; }
.document-panel ul { list-style: none; padding: 0; margin: 0; display: grid; gap: .4rem; }
.document-panel .documents-verified, .document-panel .documents-delivery[data-verdict=received] { color: #1d6b2f; font-weight: 600; }
.document-panel .documents-refused, .document-panel .documents-delivery[data-verdict=refused] { color: #a51d2d; font-weight: 600; }
.document-panel .documents-actions { display: inline-flex; gap: .4rem; }
.document-panel .documents-recipients { border: 1px solid #bbb; border-radius: .4rem; padding: .3rem .6rem; display: flex; flex-wrap: wrap; gap: .2rem 1rem; }
.document-panel .documents-recipients label { display: inline-flex; gap: .4rem; align-items: center; min-height: 44px; }
.document-panel .documents-codes code { font-size: 1.15rem; letter-spacing: .05em; }
.document-panel .documents-codes-large li { display: grid; gap: .1rem; margin: .3rem 0; }
.document-panel .documents-codes-large .who { font-weight: 600; }
.document-panel .documents-codes-large code { font-family: inherit; font-size: max(28px, 1.5em); font-weight: 700;
  font-variant-numeric: tabular-nums; letter-spacing: .06em; word-spacing: .3em; line-height: 1.25; }
.document-panel .documents-codes-large code .pair { white-space: nowrap; }
.document-panel .documents-notice { display: grid; gap: .4rem; padding: .8rem 1rem; border: 3px solid #003580;
  border-radius: 14px; background: #e8eef8; }
.document-panel .documents-notice-title { margin: 0; font-size: 1.2em; font-weight: 800; color: #003580; }
.document-panel .documents-notice .documents-name { font-weight: 700; overflow-wrap: anywhere; }
.document-panel .documents-notice .documents-actions { display: flex; flex-wrap: wrap; gap: .6rem; }
.document-panel .documents-notice .documents-actions button { flex: 1 1 8rem; justify-content: center; }
.document-panel .documents-viewer { position: fixed; inset: 2rem; background: #fff; z-index: 1000;
  border: 2px solid #333; display: grid; grid-template-rows: auto 1fr; gap: .5rem; padding: .5rem; }
.document-panel .documents-frame, .document-panel .documents-image { width: 100%; height: 100%; border: 0; object-fit: contain; }
.document-panel .chat { display: grid; gap: .4rem; border-top: 1px solid #bbb; padding-top: .5rem; }
.document-panel .chat h4 { margin: 0; }
.document-panel .chat-messages { list-style: none; padding: 0; margin: 0; display: grid; gap: .3rem;
  max-height: 14rem; overflow-y: auto; overflow-wrap: anywhere; }
.document-panel .chat-messages:empty { display: none; }
.document-panel .chat-messages li { padding: .3rem .5rem; border-radius: .4rem; background: #eef1f5; }
.document-panel .chat-messages li.mine { background: #e3ecf8; }
.document-panel .chat-who { font-weight: 700; }
.document-panel .chat-form { display: grid; grid-template-columns: 1fr auto; gap: .4rem; align-items: end; }
.document-panel .chat-label { grid-column: 1 / -1; font-weight: 600; }
.document-panel .chat-input { font: inherit; padding: .4rem; border: 1px solid #555; border-radius: .4rem;
  resize: vertical; min-height: 2.6em; }
.document-panel .chat-send { background: #1a5fb4; color: #fff; border-color: #1a5fb4; }
.document-panel .chat-status:empty { display: none; }
.document-panel .chat-status { margin: 0; color: #a51d2d; font-weight: 600; }
.document-panel .chat-phrases { display: flex; flex-wrap: wrap; gap: .3rem; }
.document-panel .chat-phrases button { min-height: 36px; padding: .2rem .6rem; }
.document-panel .chat-kiosk { font-size: 1.25em; }
.document-panel .chat-kiosk .chat-messages { max-height: 30vh; }
.document-panel .chat-dialog { width: min(60rem, 96vw); border: 3px solid #003580; border-radius: 14px;
  font-size: 1.3rem; display: none; }
.document-panel .chat-dialog[open] { display: grid; gap: .6rem; }
.document-panel .chat-dialog::backdrop { background: rgba(0, 0, 0, .45); }
.document-panel .chat-keyboard { display: grid; gap: .35rem; }
.document-panel .chat-key-row { display: flex; gap: .35rem; justify-content: center; }
.document-panel .chat-key { min-width: 3.2rem; min-height: 3.4rem; justify-content: center; font-size: 1.3rem; }
.document-panel .chat-key.wide { flex: 1; }
`;

/** The panel's rules (also for the clerk's chat, expert_console/static/js/clerk-chat.js). */
export function installStyle() {
  if (document.getElementById("document-panel-style")) return;
  const style = document.createElement("style");
  style.id = "document-panel-style";
  style.textContent = STYLE;
  document.head.append(style);
}

export function errorText(error) {
  const code = error && ERROR_CODES.includes(error.code) ? error.code : "other";
  return t(`documents.error.${code}`);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function sizeText(bytes) {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

const PREVIEWABLE = new Set(["application/pdf", "image/jpeg", "image/png"]);

export function mountDocumentPanel(container, {
  socket, call, role = "expert", device = "kiosk", sending = true, codesOnRequest = null,
  chat: withChat = true, atKiosk: kioskMode = null,
} = {}) {
  installStyle();
  const callId = typeof call === "object" ? call.id : call;
  const channel = new DocumentChannel(socket, callId, { device });
  // The customer at home (signaling/static/join/) is a customer on his own device: atKiosk false.
  const atKiosk = kioskMode ?? role === "customer";
  const codesHidden = codesOnRequest ?? atKiosk;
  const urls = [];
  // The kiosk's received documents (decrypted bytes), wiped when the panel goes.
  const kept = [];
  let viewer = null;
  let controller = null;

  const status = el("p", { class: "documents-status", role: "status", "aria-live": "polite" });
  const picker = el("input", {
    type: "file", id: `documents-file-${callId}`, "data-testid": "documents-file",
    accept: [...Object.keys(ALLOWED_TYPES), ".pdf", ".jpg", ".jpeg", ".png", ".tif", ".tiff"].join(","),
  });
  const pickLabel = el("label", { for: picker.id, class: "documents-choose" });
  const sendButton = el("button", { type: "button", class: "documents-send", "data-testid": "documents-send", disabled: "" });
  const cancelButton = el("button", { type: "button", class: "documents-cancel", "data-testid": "documents-cancel", hidden: "" });
  const progress = el("progress", { max: "1", value: "0", hidden: "", "data-testid": "documents-progress" });
  const hint = el("p", { class: "documents-hint" });
  const recipientsLegend = el("legend", {});
  const recipientsBox = el("fieldset", { class: "documents-recipients", "data-testid": "documents-recipients", hidden: "" },
    recipientsLegend);
  const codesTitle = el("h4", {});
  const codes = el("ul", { class: `documents-codes${codesHidden ? " documents-codes-large" : ""}`,
                           "data-testid": "documents-codes" });
  const codesHelp = el("p", { class: "documents-codes-help" });
  const codesBox = el("div", { class: "documents-codes-box" }, codesTitle, codesHelp, codes);
  const codesToggle = el("button", { type: "button", class: "documents-codes-toggle",
                                     "data-testid": "documents-codes-toggle",
                                     "aria-expanded": "false" });
  const receivedTitle = el("h4", {});
  const list = el("ul", { class: "documents-list", "data-testid": "documents-list" });
  const sentList = el("ul", { class: "documents-sent", "data-testid": "documents-sent" });
  const viewerBox = el("div", { class: "documents-viewer", hidden: "", role: "dialog", "aria-modal": "true" });
  codesBox.id = `documents-codes-box-${callId}`;
  codesToggle.setAttribute("aria-controls", codesBox.id);
  const root = el("div", { class: `document-panel${sending ? "" : " documents-receive-only"}`, lang: language() },
    ...(sending ? [recipientsBox,
      el("div", { class: "documents-send-row" }, pickLabel, picker, sendButton, cancelButton),
      hint] : []),
    progress, status, sentList, receivedTitle, list,
    ...(codesHidden ? [codesToggle] : []), codesBox, viewerBox);
  const chatMount = el("div", { class: "documents-chat" });
  root.append(chatMount);
  container.replaceChildren(root);
  if (codesHidden) codesBox.hidden = true;
  else codesHelp.hidden = true;

  const texts = [];
  function text(node, key, vars) {
    const known = texts.find((entry) => entry[0] === node);
    if (known) { known[1] = key; known[2] = vars; } else texts.push([node, key, vars]);
    node.textContent = t(key, vars);
  }
  text(pickLabel, "documents.choose");
  text(sendButton, "documents.send");
  text(cancelButton, "documents.cancel");
  text(receivedTitle, "documents.received");
  text(codesTitle, "documents.codes");
  text(codesHelp, "documents.codesHelp");
  const toggleLabel = () => text(codesToggle, codesBox.hidden ? "documents.showCodes" : "documents.hideCodes");
  toggleLabel();
  codesToggle.addEventListener("click", () => {
    codesBox.hidden = !codesBox.hidden;
    codesToggle.setAttribute("aria-expanded", String(!codesBox.hidden));
    toggleLabel();
    // The button at the top of its scrolling column, the codes right under it.
    if (!codesBox.hidden) codesToggle.scrollIntoView({ block: "start" });
  });
  text(recipientsLegend, "documents.to");
  const emptyItem = el("li", { class: "documents-empty" });
  text(emptyItem, "documents.none");
  list.append(emptyItem);
  const refreshHint = () => text(hint, "documents.allowed", { mb: Math.floor(channel.maxBytes / 1048576) });
  refreshHint();
  const stopLanguage = onLanguageChange(() => {
    for (const [node, key, vars] of texts) node.textContent = t(key, vars);
    renderRecipients();
    renderCodes().catch(() => {}); // "Your code" in the new language too
    root.lang = language();
  });

  function setProgress(fraction) {
    progress.hidden = false;
    progress.value = String(fraction);
  }

  function finish() {
    controller = null;
    cancelButton.hidden = true;
    progress.hidden = true;
    sendButton.disabled = !picker.files.length;
  }

  // The people a document may go to, each with a tick box: the customer and the expert are
  // ticked at first, an interpreter is not; the sender's own choices stay while keys change.
  const chosen = new Map();
  const ROLE_LABELS = { customer: "common.video.customer", expert: "common.video.expert",
                        interpreter: "common.video.interpreter" };
  function renderRecipients() {
    const boxes = [];
    for (const pid of channel.people()) {
      const role = channel.roleOf(pid);
      if (!chosen.has(pid)) chosen.set(pid, DEFAULT_RECIPIENT_ROLES.includes(role));
      const view = Object.values(channel.peers.get(pid))[0];
      const box = el("input", { type: "checkbox", value: pid, "data-participant": pid, "data-role": role });
      box.checked = chosen.get(pid);
      box.addEventListener("change", () => chosen.set(pid, box.checked));
      const label = ROLE_LABELS[role] ? `${t(ROLE_LABELS[role])}: ${view.name}` : view.name;
      boxes.push(el("label", {}, box, el("span", {}, label)));
    }
    recipientsBox.replaceChildren(recipientsLegend, ...boxes);
    recipientsBox.hidden = !boxes.length;
  }

  function recipients() {
    return channel.people().filter((pid) => chosen.get(pid));
  }

  async function renderCodes() {
    const items = [];
    for (const entry of await channel.fingerprints()) {
      const who = entry.self ? t("documents.yourCode") : `${entry.name}`;
      // Large codes break only between pairs of groups: "12345 67890 / 13579 24680".
      const groups = entry.fingerprint.split(" ");
      const shown = codesHidden && groups.length === 4
        ? el("code", {}, el("span", { class: "pair" }, groups.slice(0, 2).join(" ")), " ",
             el("span", { class: "pair" }, groups.slice(2).join(" ")))
        : el("code", {}, entry.fingerprint);
      items.push(el("li", { "data-participant": entry.participantId },
        el("span", { class: "who" }, `${who}: `), shown));
    }
    codes.replaceChildren(...items);
  }

  function showViewer(doc, url) {
    const close = el("button", { type: "button", class: "documents-close" });
    text(close, "documents.close");
    close.addEventListener("click", () => {
      viewerBox.hidden = true;
      viewerBox.replaceChildren();
    });
    let body;
    if (!PREVIEWABLE.has(doc.metadata.type)) {
      body = el("p", {});
      text(body, "documents.noPreview");
    } else if (doc.metadata.type === "application/pdf") {
      body = el("iframe", { src: url, title: doc.metadata.name, class: "documents-frame" });
    } else {
      body = el("img", { src: url, alt: doc.metadata.name, class: "documents-image" });
    }
    viewerBox.replaceChildren(close, body);
    viewerBox.hidden = false;
    close.focus();
  }

  /** The kiosk's own viewer (doc-viewer.js): no blob: address, print allowed, save not. */
  function openAtKiosk(doc, { print = false, from = null } = {}) {
    if (viewer) viewer.close();
    const options = { name: doc.metadata.name, type: doc.metadata.type, bytes: doc.content,
                      returnFocus: from, onClose: () => { viewer = null; } };
    viewer = print ? printDocument(options) : openDocumentViewer(options);
    return viewer;
  }

  function addReceived(doc) {
    emptyItem.remove();
    const mark = el("span", { class: "documents-verified", "data-testid": "documents-verified" });
    // A still from the document camera says so in the page's language (the server's name
    // for the device carries an English "(document camera)").
    const from = doc.sender.role === "document_camera" ? t("common.video.document") : doc.sender.name;
    text(mark, "documents.verified", { name: from });
    const actions = el("span", { class: "documents-actions" });
    if (atKiosk) {
      // No object URL at all at the kiosk: the bytes stay in memory until the call ends.
      kept.push(doc);
      const view = el("button", { type: "button", class: "documents-view", "data-testid": "documents-view" });
      view.addEventListener("click", () => openAtKiosk(doc, { from: view }));
      text(view, "documents.view");
      const print = el("button", { type: "button", class: "documents-print", "data-testid": "documents-print" });
      print.addEventListener("click", () => openAtKiosk(doc, { print: true, from: print }));
      text(print, "documents.print");
      actions.append(view, print);
      const title = el("p", { class: "documents-notice-title" });
      text(title, "documents.notice");
      const item = el("li", { class: "documents-notice", "data-sha256": doc.metadata.sha256,
                              "data-testid": "documents-item", "data-type": doc.metadata.type },
        title,
        el("span", {}, el("span", { class: "documents-name" }, doc.metadata.name), " ",
           el("span", { class: "documents-size" }, sizeText(doc.metadata.size))),
        mark, actions);
      list.prepend(item); // the newest first, where the eye is
      root.dispatchEvent(new CustomEvent("document-received", { bubbles: true, detail: {
        name: doc.metadata.name, sha256: doc.metadata.sha256, size: doc.metadata.size,
        type: doc.metadata.type, sender: doc.sender.participant_id } }));
      return;
    }
    const blob = new Blob([doc.content], { type: doc.metadata.type });
    const url = URL.createObjectURL(blob);
    urls.push(url);
    const view = el("button", { type: "button", onclick: () => showViewer(doc, url) });
    text(view, "documents.view");
    const save = el("a", { href: url, download: doc.metadata.name, class: "button", "data-testid": "documents-save" });
    text(save, "documents.save");
    actions.append(view, save);
    list.append(el("li", { "data-sha256": doc.metadata.sha256, "data-testid": "documents-item" },
      el("span", { class: "documents-name" }, doc.metadata.name), " ",
      el("span", { class: "documents-size" }, sizeText(doc.metadata.size)), " ", mark, " ", actions));
    root.dispatchEvent(new CustomEvent("document-received", { bubbles: true, detail: {
      name: doc.metadata.name, sha256: doc.metadata.sha256, size: doc.metadata.size,
      type: doc.metadata.type, sender: doc.sender.participant_id } }));
  }

  function addRefused(error) {
    emptyItem.remove();
    const item = el("li", { class: "documents-refused", "data-testid": "documents-refused", "data-code": error.code || "other" });
    text(item, "documents.refused", { reason: errorText(error) });
    list.append(item);
  }

  const queue = [];
  let receiving = false;
  async function drain() {
    if (receiving) return;
    receiving = true;
    while (queue.length) {
      const incoming = queue.shift();
      text(status, "documents.receiving");
      try {
        addReceived(await channel.receive(incoming, { onProgress: (p) => setProgress(p.fraction) }));
        status.textContent = "";
      } catch (error) {
        addRefused(error);
        status.textContent = errorText(error);
      }
      progress.hidden = true;
    }
    receiving = false;
  }

  const sentItems = new Map();
  channel.addEventListener("incoming", (e) => { queue.push(e.detail); drain(); });
  channel.addEventListener("keys", () => { renderRecipients(); renderCodes(); });
  // A receipt can arrive before our upload request has returned: keep it until the item exists.
  const verdicts = new Map();
  function showVerdicts(transferId) {
    const item = sentItems.get(transferId);
    for (const detail of verdicts.get(transferId) || []) {
      if (!item) return;
      const note = el("span", { class: "documents-delivery", "data-verdict": detail.verdict });
      if (detail.verdict === "received") text(note, "documents.delivered");
      else text(note, "documents.refusedBy", { reason: errorText({ code: detail.reason }) });
      item.append(" ", note);
    }
    if (item) verdicts.delete(transferId);
  }
  channel.addEventListener("delivered", (e) => {
    const pending = verdicts.get(e.detail.transfer_id) || [];
    verdicts.set(e.detail.transfer_id, [...pending, e.detail]);
    showVerdicts(e.detail.transfer_id);
  });

  picker.addEventListener("change", () => { sendButton.disabled = !picker.files.length; });
  cancelButton.addEventListener("click", () => controller && controller.abort());
  sendButton.addEventListener("click", async () => {
    const file = picker.files[0];
    if (!file) return;
    controller = new AbortController();
    sendButton.disabled = true;
    cancelButton.hidden = false;
    text(status, "documents.sending", { name: file.name });
    setProgress(0);
    try {
      const targets = recipients();
      if (!targets.length) {
        status.textContent = t("documents.noneChosen");
        return;
      }
      const sent = await channel.send(file, {
        recipients: targets,
        signal: controller.signal,
        onProgress: (p) => setProgress(p.phase === "encrypt" ? p.fraction * 0.2 : 0.2 + p.fraction * 0.8),
      });
      const item = el("li", { "data-transfer": sent.transferId, "data-sha256": sent.metadata.sha256 });
      text(item, "documents.sent", { name: sent.metadata.name });
      sentItems.set(sent.transferId, item);
      sentList.append(item);
      showVerdicts(sent.transferId);
      status.textContent = "";
      picker.value = "";
    } catch (error) {
      status.textContent = errorText(error);
    } finally {
      finish();
    }
  });

  // The call's text chat rides on the same call keys (chat.js): mounted once they are out.
  let chat = null;
  let chatView = null;
  const ready = channel.start().then(() => {
    refreshHint();
    renderRecipients();
    if (withChat && !chat) {
      chat = new CallChat(channel);
      chatView = mountChat(chatMount, { chat, atKiosk,
                                        callLanguage: typeof call === "object" ? call.language : null });
    }
    return renderCodes();
  }).catch((error) => { status.textContent = errorText(error); throw error; });

  return {
    channel,
    ready,
    recipients,
    /** The call's chat (null until the keys are out, or without `chat`). */
    get chat() { return chat; },
    /** The open kiosk viewer, if any (tests and the kiosk page). */
    get viewer() { return viewer; },
    closeViewer() { if (viewer) viewer.close(); },
    destroy() {
      if (controller) controller.abort();
      stopLanguage && stopLanguage();
      if (viewer) viewer.close();
      if (atKiosk) closeAllViewers();
      if (chatView) chatView.destroy();
      if (chat) chat.destroy();
      channel.destroy();
      for (const url of urls) URL.revokeObjectURL(url);
      urls.length = 0;
      for (const doc of kept) if (doc.content && doc.content.fill) doc.content.fill(0);
      kept.length = 0;
      container.replaceChildren();
    },
  };
}

export default mountDocumentPanel;
