// Text chat in a call, end-to-end encrypted with the call keys of the document channel
// (docs/document-protocol.md §8; the server relays ciphertext only: signaling/in_call/chat.py).
//
//   const chat = new CallChat(channel);      // a started DocumentChannel
//   chat.addEventListener("message", (e) => e.detail);   // {id, text, mine, name, role, at}
//   await chat.send("Hei");
//   const ui = mountChat(container, { chat, atKiosk, callLanguage });  ...; ui.destroy();
//   const bytes = chat.transcript();        // canonical JSON of the messages (§8, transcript)
//
// At the kiosk the messages are large and a "Write a message" button opens an on-screen
// keyboard (a public touch screen has no keyboard); at the consoles a text field with the
// expert's quick phrases in Finnish, Swedish and English. Text is always shown as text: a link
// in a message is never clickable (least of all at a public kiosk). Nothing is stored: the
// messages are gone with the page's call, unless the expert attaches the transcript to the
// service record: then its SHA-256 goes into the record (`chat:transcript`), the text stays
// with him ("Save transcript"). The office's clerk is in the chat too (keys with role "clerk").
//
// History: when a chat person's call key is new (his page reloaded, an interpreter or the
// clerk came later), every one of us who holds messages seals them to that key and sends them
// (`chat:history`, docs/document-protocol.md §8 "History"); he merges the copies by message id,
// in the holders' order, with the original sender and time. Why every holder and not the
// kiosk alone: signaling/in_call/chat.py, "history for a new key".

import { addStrings, language, onLanguageChange, t } from "./i18n.js";
import {
  CHAT_HISTORY_MAX_BYTES, CHAT_MAX_CHARS, canonicalJson, fromB64u, hex, openChat, openChatHistory,
  sealChat, sealChatHistory,
} from "./document-crypto.js";

addStrings({
  fi: {
    "chat.title": "Viestit", "chat.input": "Viesti", "chat.send": "Lähetä",
    "chat.write": "Kirjoita viesti", "chat.close": "Sulje", "chat.you": "Sinä",
    "chat.erase": "Pyyhi", "chat.space": "Välilyönti", "chat.keyboard": "Näppäimistö",
    "chat.failed": "Viestiä ei voitu lähettää.", "chat.phrases": "Valmiit lauseet",
    "chat.phrasesLanguage": "Lauseiden kieli", "chat.none": "Ei viestejä.",
    "chat.role.clerk": "palvelusihteeri",
    "chat.attach": "Liitä viestit palvelutapahtuman kirjaukseen",
    "chat.attachHelp": "Kirjaukseen menee vain viestien tarkistussumma (SHA-256); viestit jäävät sinulle.",
    "chat.attached": "Liitetty kirjaukseen: {n} viestiä (SHA-256 {hash}…).",
    "chat.attachAgain": "Liittämisen jälkeen on tullut uusia viestejä: liitä uudelleen.",
    "chat.attachFailed": "Viestejä ei voitu liittää kirjaukseen.",
    "chat.saveTranscript": "Tallenna viestit",
    "chat.disputed": "Tästä viestistä on saatu eri versioita: varmistakaa asia ääneen.",
  },
  sv: {
    "chat.title": "Meddelanden", "chat.input": "Meddelande", "chat.send": "Skicka",
    "chat.write": "Skriv ett meddelande", "chat.close": "Stäng", "chat.you": "Du",
    "chat.erase": "Radera", "chat.space": "Mellanslag", "chat.keyboard": "Tangentbord",
    "chat.failed": "Meddelandet kunde inte skickas.", "chat.phrases": "Färdiga fraser",
    "chat.phrasesLanguage": "Frasernas språk", "chat.none": "Inga meddelanden.",
    "chat.role.clerk": "servicesekreterare",
    "chat.attach": "Bifoga meddelandena till registreringen av servicehändelsen",
    "chat.attachHelp": "Registreringen får bara meddelandenas kontrollsumma (SHA-256); meddelandena stannar hos dig.",
    "chat.attached": "Bifogat till registreringen: {n} meddelanden (SHA-256 {hash}…).",
    "chat.attachAgain": "Nya meddelanden har kommit efter bifogandet: bifoga igen.",
    "chat.attachFailed": "Meddelandena kunde inte bifogas till registreringen.",
    "chat.saveTranscript": "Spara meddelandena",
    "chat.disputed": "Olika versioner av meddelandet har kommit: kontrollera saken muntligt.",
  },
  en: {
    "chat.title": "Messages", "chat.input": "Message", "chat.send": "Send",
    "chat.write": "Write a message", "chat.close": "Close", "chat.you": "You",
    "chat.erase": "Erase", "chat.space": "Space", "chat.keyboard": "Keyboard",
    "chat.failed": "The message could not be sent.", "chat.phrases": "Quick phrases",
    "chat.phrasesLanguage": "Language of the phrases", "chat.none": "No messages.",
    "chat.role.clerk": "service secretary",
    "chat.attach": "Attach chat transcript to the record",
    "chat.attachHelp": "The record gets only the transcript's checksum (SHA-256); the messages stay with you.",
    "chat.attached": "Attached to the record: {n} messages (SHA-256 {hash}…).",
    "chat.attachAgain": "New messages came after it was attached: attach it again.",
    "chat.attachFailed": "The transcript could not be attached to the record.",
    "chat.saveTranscript": "Save transcript",
    "chat.disputed": "Different versions of this message arrived: check it aloud.",
  },
});

/** The expert's quick phrases, in the customer's language whatever the page's. */
export const PHRASES = {
  fi: ["Hetkinen, tarkistan asian.", "Kuuletteko minut?", "Näettekö minut?",
       "Lähetän teille asiakirjan.", "Voitteko näyttää asiakirjan kameralle?",
       "Kiitos, asia on nyt hoidettu."],
  sv: ["Ett ögonblick, jag kontrollerar saken.", "Hör ni mig?", "Ser ni mig?",
       "Jag skickar ett dokument till er.", "Kan ni visa dokumentet för kameran?",
       "Tack, ärendet är nu klart."],
  en: ["One moment, I will check.", "Can you hear me?", "Can you see me?",
       "I am sending you a document.", "Could you show the document to the camera?",
       "Thank you, the matter is now done."],
};

// The call's language of service (ISO 639-3 in tickets) as a page language.
const SERVICE_LANGUAGE = { fin: "fi", swe: "sv", eng: "en" };

// A history page's fixed part ({"after":"<id>","messages":[]}) besides its messages.
const HISTORY_PAGE_OVERHEAD = 64;

/** A message as a history page carries it (§8, "History"). */
function historyItem(m) {
  return { id: m.id, from: m.from, name: m.name, role: m.role, sent_at: m.sentAt, text: m.text };
}

/**
 * Split messages into history pages whose sealed body stays within CHAT_HISTORY_MAX_BYTES
 * (one event each, under the server's message size limit): [{after, items}], where `after` is
 * the id of the message before the page's first ("" at the start).
 */
export function historyPages(messages, after = "") {
  const encoder = new TextEncoder();
  const pages = [];
  let page = null;
  let size = 0;
  for (const message of messages) {
    const item = historyItem(message);
    const bytes = encoder.encode(JSON.stringify(item)).length + 1;
    if (!page || size + bytes > CHAT_HISTORY_MAX_BYTES - HISTORY_PAGE_OVERHEAD) {
      page = { after: page ? page.items[page.items.length - 1].id : after, items: [] };
      pages.push(page);
      size = 0;
    }
    page.items.push(item);
    size += bytes;
  }
  return pages;
}

// The kiosk's on-screen keyboard: Finnish/Swedish letters, digits and the usual marks.
const KEY_ROWS = [
  "1234567890".split(""),
  "qwertyuiopå".split(""),
  "asdfghjklöä".split(""),
  "zxcvbnm,.?!".split(""),
];

export class CallChat extends EventTarget {
  constructor(channel) {
    super();
    this.channel = channel;
    this.socket = channel.socket;
    this.callId = channel.callId;
    this.messages = [];
    this.onMessage = (data) => {
      this.receive(data).catch((error) => console.warn("chat message not opened:", error.message));
    };
    this.socket.on("chat:message", this.onMessage);
    // History (§8): the keys each chat person had when we last looked; a new one gets what we
    // hold. Pages go out one after another (each awaits its ack: order, and the rate limit);
    // pages that come in are merged one after another (a page's `after` is in the one before).
    this.keyed = new Map();
    for (const pid of this.people()) this.keyed.set(pid, this.keysOf(pid));
    this.outbox = Promise.resolve();
    this.inbox = Promise.resolve();
    this.onKeys = () => this.answerNewKeys();
    channel.addEventListener("keys", this.onKeys);
    channel.chatHistorySink = (data) => {
      this.inbox = this.inbox.then(() => this.receiveHistory(data))
        .catch((error) => console.warn("chat history not opened:", error.message));
    };
    for (const data of (channel.chatHistory || []).splice(0)) channel.chatHistorySink(data);
  }

  /** Everyone besides us in the chat: the people and the office's clerk, never a device. */
  people() {
    return this.channel.chatPeople ? this.channel.chatPeople() : this.channel.people();
  }

  /** A chat person's attested public keys, as one comparable string ("" when he has none). */
  keysOf(pid) {
    const bySuite = this.channel.peers.get(pid) || {};
    return Object.values(bySuite).map((v) => `${v.suite}:${v.public_key}`).sort().join(",");
  }

  /** New keys in the call's key list: send each new key what we hold. */
  answerNewKeys() {
    const people = this.people();
    for (const pid of [...this.keyed.keys()]) {
      if (!people.includes(pid)) this.keyed.delete(pid); // back later: he missed what came meanwhile
    }
    for (const pid of people) {
      const keys = this.keysOf(pid);
      if (this.keyed.get(pid) === keys) continue;
      this.keyed.set(pid, keys);
      if (this.messages.length) this.queueHistory(pid);
    }
  }

  /** Send `pid` our messages (all of them, as they are when it is his turn, by default). */
  queueHistory(pid, messages = null, after = "") {
    this.outbox = this.outbox.then(() => this.sendHistory(pid, messages, after))
      .catch((error) => console.warn(`chat history for ${pid} not sent:`, error.message));
    return this.outbox;
  }

  async sendHistory(pid, messages, after) {
    const channel = this.channel;
    if (!this.people().includes(pid)) return; // gone meanwhile
    const suite = channel.suiteFor([pid]);
    const recipient = { participantId: pid, publicBytes: fromB64u(channel.peers.get(pid)[suite].public_key) };
    // A message whose sender gave no valid time could not be shown with one: it stays out.
    const held = (messages || this.messages).filter((m) => !Number.isNaN(Date.parse(m.sentAt)));
    for (const page of historyPages(held, after)) {
      const envelope = await sealChatHistory(page.items, channel.keys[suite], recipient, {
        callId: this.callId, senderId: channel.participantId, after: page.after,
      });
      await channel.request("chat:history", { call_id: this.callId, envelope });
    }
  }

  /** A page of history from `sender`, who holds the chat, for our new key. */
  async receiveHistory({ call_id: callId, sender, envelope }) {
    if (callId !== this.callId || !envelope) return;
    const attested = this.channel.peers.get(sender)?.[envelope.suite];
    const me = this.channel.keys[envelope.suite];
    if (!attested || !me) throw new Error(`no attested key of ${sender}`);
    const page = await openChatHistory(envelope, me, {
      callId: this.callId, myId: this.channel.participantId, senderId: sender,
      senderPublic: fromB64u(attested.public_key),
    });
    this.merge(page, sender);
  }

  /**
   * Merge a history page: a message we have is not added again (its copy is compared); one we
   * lack goes right after the message before it in the page, so each holder's order stands
   * and messages that reached us live since our key came stay after the earlier ones.
   */
  merge({ after, messages }, sender) {
    const indexOf = (id) => this.messages.findIndex((m) => m.id === id);
    let cursor = after ? indexOf(after) : -1;
    if (after && cursor < 0) cursor = this.messages.length - 1;
    for (const item of messages) {
      const known = indexOf(item.id);
      if (known >= 0) {
        this.compare(this.messages[known], item, sender);
        cursor = known;
        continue;
      }
      // The sender's name and role as the server attests them now; if he has left, as the
      // holder saw them attested.
      const bySuite = this.channel.peers.get(item.from);
      const view = bySuite && Object.values(bySuite)[0];
      cursor += 1;
      this.add({ id: item.id, text: item.text, mine: item.from === this.channel.participantId,
                 name: view ? view.name : item.name, role: view ? view.role : item.role,
                 from: item.from, sentAt: item.sent_at, at: new Date(item.sent_at), via: sender },
               cursor);
    }
  }

  /** Copies of one message from different holders must agree; if not, everyone sees it. */
  compare(message, item, sender) {
    if (message.from === item.from && message.text === item.text && message.sentAt === item.sent_at) return;
    console.warn(`chat: ${sender}'s copy of message ${item.id} differs from ours`);
    if (message.disputed) return;
    message.disputed = true;
    this.dispatchEvent(new CustomEvent("disputed", { detail: message }));
  }

  /** Seal `text` to everyone else in the call (people and the office's clerk, never a
   * device) and send it. */
  async send(text) {
    const channel = this.channel;
    const recipients = this.people();
    if (!recipients.length) throw new Error("nobody to send to yet");
    const sealedTo = new Map(recipients.map((pid) => [pid, this.keysOf(pid)]));
    const suite = channel.suiteFor(recipients);
    const keys = recipients.map((pid) => ({
      participantId: pid, publicBytes: fromB64u(channel.peers.get(pid)[suite].public_key),
    }));
    const sentAt = new Date().toISOString();
    const envelope = await sealChat(text, channel.keys[suite], keys,
                                    { callId: this.callId, senderId: channel.participantId, sentAt });
    await channel.request("chat:send", { call_id: this.callId, envelope });
    const me = this.self();
    const message = { id: envelope.id, text, mine: true, name: me.name, role: me.role,
                      from: channel.participantId, sentAt, at: new Date() };
    this.add(message);
    // A key that came while this was sealed and sent (a page reloading just then) could not
    // open it: he gets it as history (a copy he also gets otherwise is dropped by its id).
    const index = this.messages.indexOf(message);
    const before = index > 0 ? this.messages[index - 1].id : "";
    for (const pid of this.people()) {
      if (sealedTo.get(pid) !== this.keysOf(pid)) this.queueHistory(pid, [message], before);
    }
  }

  /** Our own attested view (name, role) in the call's key list. */
  self() {
    const bySuite = this.channel.peers.get(this.channel.participantId);
    const view = bySuite && Object.values(bySuite)[0];
    return { name: view ? view.name : "", role: view ? view.role : "" };
  }

  /**
   * The transcript of the messages so far (docs/document-protocol.md §8): UTF-8 bytes of the
   * canonical JSON {v: 1, type, call_id, messages: [{at, from, name, role, text}]}, in the order
   * this page saw them; `at` is the sender's own time from inside the sealed message.
   */
  transcript() {
    const messages = this.messages.map((m) => ({
      at: m.sentAt, from: m.from, name: m.name, role: m.role, text: m.text,
    }));
    const body = { v: 1, type: "etapalvelu.chat_transcript", call_id: this.callId, messages };
    return new TextEncoder().encode(canonicalJson(body));
  }

  /** Attach the transcript's SHA-256 to the call's service record (the call's expert). */
  async attachTranscript() {
    const bytes = this.transcript();
    const sha256 = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
    const count = this.messages.length;
    await this.channel.request("chat:transcript", {
      call_id: this.callId, sha256, size: bytes.length, messages: count,
    });
    this.attached = { sha256, size: bytes.length, messages: count, bytes };
    this.dispatchEvent(new CustomEvent("attached", { detail: this.attached }));
    return this.attached;
  }

  async receive({ call_id: callId, sender, envelope }) {
    if (callId !== this.callId || !envelope) return;
    // The sender is who the server says, and his key the one it attested for him.
    const attested = this.channel.peers.get(sender)?.[envelope.suite];
    const me = this.channel.keys[envelope.suite];
    if (!attested || !me) return;
    const opened = await openChat(envelope, me, {
      callId: this.callId, myId: this.channel.participantId, senderId: sender,
      senderPublic: fromB64u(attested.public_key),
    });
    this.add({ id: opened.id, text: opened.text, mine: false, name: attested.name,
               role: attested.role, from: sender, sentAt: opened.sentAt, at: new Date() });
  }

  /** Add a message at `index` (the end by default), once: messages are known by their id. */
  add(message, index = this.messages.length) {
    if (this.messages.some((m) => m.id === message.id)) return;
    this.messages.splice(index, 0, message);
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  destroy() {
    this.socket.off("chat:message", this.onMessage);
    this.channel.removeEventListener("keys", this.onKeys);
    if (this.channel.chatHistorySink) this.channel.chatHistorySink = null;
    this.messages = [];
    this.attached = null;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) node.append(child);
  return node;
}

/** The chat's view in `container`: messages, and a way to write. */
export function mountChat(container, { chat, atKiosk = false, callLanguage = null }) {
  const texts = [];
  const text = (node, key, attr = null) => {
    texts.push([node, key, attr]);
    if (attr) node.setAttribute(attr, t(key));
    else node.textContent = t(key);
    return node;
  };
  const titleId = `chat-title-${chat.callId}`;
  const inputId = `chat-input-${chat.callId}`;
  // Focusable: it scrolls, and a keyboard user must be able to scroll it too.
  const list = el("ol", { class: "chat-messages", "data-testid": "chat-messages", "aria-live": "polite",
                          tabindex: "0", "aria-labelledby": titleId });
  const status = el("p", { class: "chat-status", role: "status" });
  const input = el("textarea", { id: inputId, class: "chat-input", "data-testid": "chat-input",
                                 rows: atKiosk ? 2 : 2, maxlength: CHAT_MAX_CHARS });
  const label = text(el("label", { for: inputId, class: "chat-label" }), "chat.input");
  const send = text(el("button", { type: "submit", class: "chat-send", "data-testid": "chat-send" }),
                    "chat.send");
  const form = el("form", { class: "chat-form" }, label, input, send);
  const root = el("section", { class: `chat${atKiosk ? " chat-kiosk" : ""}`, "aria-labelledby": titleId,
                               "data-testid": "chat" },
    text(el("h4", { id: titleId }), "chat.title"), list, status);

  let dialog = null;
  if (atKiosk) {
    // The customer writes in a dialog with large keys; the messages stay in sight meanwhile.
    input.readOnly = false;
    const keyboard = el("div", { class: "chat-keyboard", role: "group", "data-testid": "chat-keyboard" });
    text(keyboard, "chat.keyboard", "aria-label");
    const type = (value) => {
      if (input.value.length < CHAT_MAX_CHARS) input.value += value;
    };
    for (const row of KEY_ROWS) {
      const line = el("div", { class: "chat-key-row" });
      for (const ch of row) {
        const key = el("button", { type: "button", class: "chat-key", tabindex: "-1" }, ch);
        key.addEventListener("click", () => type(ch));
        line.append(key);
      }
      keyboard.append(line);
    }
    const space = text(el("button", { type: "button", class: "chat-key wide", tabindex: "-1" }),
                       "chat.space");
    space.addEventListener("click", () => type(" "));
    const erase = text(el("button", { type: "button", class: "chat-key", tabindex: "-1" }), "chat.erase");
    erase.addEventListener("click", () => { input.value = input.value.slice(0, -1); });
    keyboard.append(el("div", { class: "chat-key-row" }, space, erase));
    const close = text(el("button", { type: "button", class: "chat-close", "data-testid": "chat-close" }),
                       "chat.close");
    dialog = el("dialog", { class: "chat-dialog", "aria-labelledby": inputId },
      form, keyboard, close);
    close.addEventListener("click", () => dialog.close());
    const write = text(el("button", { type: "button", class: "chat-write", "data-testid": "chat-write" }),
                       "chat.write");
    write.addEventListener("click", () => {
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
    root.append(write, dialog);
  } else {
    root.append(form);
    // Quick phrases in the customer's language (the call's language of service), changeable.
    let phraseLanguage = SERVICE_LANGUAGE[callLanguage] || language();
    const phraseSelect = el("select", { class: "chat-phrase-language", id: `chat-phrase-lang-${chat.callId}` });
    for (const code of Object.keys(PHRASES)) {
      phraseSelect.append(el("option", { value: code }, { fi: "suomi", sv: "svenska", en: "English" }[code]));
    }
    phraseSelect.value = phraseLanguage;
    const phraseLabel = text(el("label", { for: phraseSelect.id }), "chat.phrasesLanguage");
    const phraseBox = el("div", { class: "chat-phrases", role: "group", "data-testid": "chat-phrases" });
    text(phraseBox, "chat.phrases", "aria-label");
    const renderPhrases = () => {
      phraseBox.replaceChildren(...PHRASES[phraseLanguage].map((phrase) => {
        const button = el("button", { type: "button", class: "chat-phrase", lang: phraseLanguage }, phrase);
        button.addEventListener("click", () => {
          input.value = phrase;
          input.focus();
        });
        return button;
      }));
    };
    phraseSelect.addEventListener("change", () => {
      phraseLanguage = phraseSelect.value;
      renderPhrases();
    });
    renderPhrases();
    root.append(el("details", { class: "chat-phrase-box" },
      text(el("summary", {}), "chat.phrases"), el("p", {}, phraseLabel, " ", phraseSelect), phraseBox));
  }
  // The call's expert attaches the transcript to the service record (console only).
  let saveUrl = null;
  let refreshAttach = () => {};
  let stopAttachLanguage = null;
  if (!atKiosk) {
    const attach = text(el("button", { type: "button", class: "chat-attach", "data-testid": "chat-attach" }),
                        "chat.attach");
    const help = text(el("p", { class: "chat-attach-help", id: `chat-attach-help-${chat.callId}` }),
                      "chat.attachHelp");
    attach.setAttribute("aria-describedby", help.id);
    const attachStatus = el("p", { class: "chat-attach-status", role: "status",
                                   "data-testid": "chat-attach-status" });
    const save = text(el("a", { class: "button chat-save", "data-testid": "chat-save", hidden: true }),
                      "chat.saveTranscript");
    const attachBox = el("div", { class: "chat-attach-box", hidden: true }, attach, help, attachStatus, save);
    const describe = () => {
      const done = chat.attached;
      if (!done) return;
      attachStatus.textContent = done.messages < chat.messages.length ? t("chat.attachAgain")
        : t("chat.attached", { n: done.messages, hash: done.sha256.slice(0, 12) });
    };
    refreshAttach = () => {
      attachBox.hidden = chat.self().role !== "expert";
      attach.disabled = !chat.messages.length;
      describe();
    };
    attach.addEventListener("click", async () => {
      attach.disabled = true;
      try {
        const done = await chat.attachTranscript();
        if (saveUrl) URL.revokeObjectURL(saveUrl);
        saveUrl = URL.createObjectURL(new Blob([done.bytes], { type: "application/json" }));
        save.href = saveUrl;
        save.download = `chat-${chat.callId}.json`;
        save.hidden = false;
        describe();
      } catch (error) {
        console.warn("chat transcript:", error);
        attachStatus.textContent = t("chat.attachFailed");
      } finally {
        attach.disabled = !chat.messages.length;
      }
    });
    root.append(attachBox);
    chat.channel.addEventListener("keys", refreshAttach);
    refreshAttach();
    stopAttachLanguage = onLanguageChange(() => describe());
  }
  container.append(root);

  const whoOf = (message) => {
    if (message.mine) return t("chat.you");
    return message.role === "clerk" ? `${message.name} (${t("chat.role.clerk")})` : message.name;
  };
  const items = new Map(); // message id -> its <li>
  const markDisputed = (item) => {
    if (item.querySelector(".chat-disputed")) return;
    item.dataset.disputed = "true";
    item.append(" ", el("span", { class: "chat-disputed" }, t("chat.disputed")));
  };
  const render = (message) => {
    const who = whoOf(message);
    const item = el("li", { class: message.mine ? "mine" : "theirs", "data-testid": "chat-message",
                            "data-mine": String(message.mine), "data-role": message.role || "",
                            "data-from": message.from || "", "data-sent-at": message.sentAt || "" },
      el("span", { class: "chat-who" }, who), " ",
      // textContent only: a link stays text, markup stays text
      el("span", { class: "chat-text" }, message.text));
    item._message = message;
    items.set(message.id, item);
    // History comes in at its place among the messages (chat.messages is in order).
    list.insertBefore(item, list.children[chat.messages.indexOf(message)] || null);
    if (message.disputed) markDisputed(item);
    item.scrollIntoView({ block: "nearest" });
    refreshAttach();
  };
  const onMessage = (event) => render(event.detail);
  const onDisputed = (event) => {
    const item = items.get(event.detail.id);
    if (item) markDisputed(item);
  };
  chat.addEventListener("message", onMessage);
  chat.addEventListener("disputed", onDisputed);
  for (const message of chat.messages) render(message);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    send.disabled = true;
    status.textContent = "";
    try {
      await chat.send(value);
      input.value = "";
      if (dialog && dialog.open) dialog.close();
    } catch (error) {
      console.warn("chat:", error);
      status.textContent = t("chat.failed");
    } finally {
      send.disabled = false;
    }
  });
  const stopLanguage = onLanguageChange(() => {
    for (const [node, key, attr] of texts) {
      if (attr) node.setAttribute(attr, t(key));
      else node.textContent = t(key);
    }
    for (const who of list.querySelectorAll("li .chat-who")) {
      if (who.parentNode._message) who.textContent = whoOf(who.parentNode._message);
    }
    for (const note of list.querySelectorAll("li .chat-disputed")) note.textContent = t("chat.disputed");
  });
  return {
    root,
    destroy() {
      chat.removeEventListener("message", onMessage);
      chat.removeEventListener("disputed", onDisputed);
      chat.channel.removeEventListener("keys", refreshAttach);
      if (stopAttachLanguage) stopAttachLanguage();
      if (saveUrl) URL.revokeObjectURL(saveUrl);
      if (stopLanguage) stopLanguage();
      if (dialog && dialog.open) dialog.close();
      root.remove();
    },
  };
}
