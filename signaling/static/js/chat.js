// Text chat in a call, end-to-end encrypted with the call keys of the document channel
// (docs/document-protocol.md §8; the server relays ciphertext only: signaling/chat.py).
//
//   const chat = new CallChat(channel);      // a started DocumentChannel
//   chat.addEventListener("message", (e) => e.detail);   // {id, text, mine, name, role, at}
//   await chat.send("Hei");
//   const ui = mountChat(container, { chat, atKiosk, callLanguage });  ...; ui.destroy();
//
// At the kiosk the messages are large and a "Write a message" button opens an on-screen
// keyboard (a public touch screen has no keyboard); at the consoles a text field with the
// expert's quick phrases in Finnish, Swedish and English. Text is always shown as text: a link
// in a message is never clickable (least of all at a public kiosk). Nothing is stored: the
// messages are gone with the page's call.

import { addStrings, language, onLanguageChange, t } from "./i18n.js";
import { CHAT_MAX_CHARS, fromB64u, openChat, sealChat } from "./document-crypto.js";

addStrings({
  fi: {
    "chat.title": "Viestit", "chat.input": "Viesti", "chat.send": "Lähetä",
    "chat.write": "Kirjoita viesti", "chat.close": "Sulje", "chat.you": "Sinä",
    "chat.erase": "Pyyhi", "chat.space": "Välilyönti", "chat.keyboard": "Näppäimistö",
    "chat.failed": "Viestiä ei voitu lähettää.", "chat.phrases": "Valmiit lauseet",
    "chat.phrasesLanguage": "Lauseiden kieli", "chat.none": "Ei viestejä.",
  },
  sv: {
    "chat.title": "Meddelanden", "chat.input": "Meddelande", "chat.send": "Skicka",
    "chat.write": "Skriv ett meddelande", "chat.close": "Stäng", "chat.you": "Du",
    "chat.erase": "Radera", "chat.space": "Mellanslag", "chat.keyboard": "Tangentbord",
    "chat.failed": "Meddelandet kunde inte skickas.", "chat.phrases": "Färdiga fraser",
    "chat.phrasesLanguage": "Frasernas språk", "chat.none": "Inga meddelanden.",
  },
  en: {
    "chat.title": "Messages", "chat.input": "Message", "chat.send": "Send",
    "chat.write": "Write a message", "chat.close": "Close", "chat.you": "You",
    "chat.erase": "Erase", "chat.space": "Space", "chat.keyboard": "Keyboard",
    "chat.failed": "The message could not be sent.", "chat.phrases": "Quick phrases",
    "chat.phrasesLanguage": "Language of the phrases", "chat.none": "No messages.",
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
  }

  /** Seal `text` to everyone else in the call (people, never a device) and send it. */
  async send(text) {
    const channel = this.channel;
    const recipients = channel.people();
    if (!recipients.length) throw new Error("nobody to send to yet");
    const suite = channel.suiteFor(recipients);
    const keys = recipients.map((pid) => ({
      participantId: pid, publicBytes: fromB64u(channel.peers.get(pid)[suite].public_key),
    }));
    const envelope = await sealChat(text, channel.keys[suite], keys,
                                    { callId: this.callId, senderId: channel.participantId });
    await channel.request("chat:send", { call_id: this.callId, envelope });
    this.add({ id: envelope.id, text, mine: true, name: "", role: "", at: new Date() });
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
               role: attested.role, at: new Date() });
  }

  add(message) {
    if (this.messages.some((m) => m.id === message.id)) return;
    this.messages.push(message);
    this.dispatchEvent(new CustomEvent("message", { detail: message }));
  }

  destroy() {
    this.socket.off("chat:message", this.onMessage);
    this.messages = [];
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
  container.append(root);

  const render = (message) => {
    const who = message.mine ? t("chat.you") : message.name;
    const item = el("li", { class: message.mine ? "mine" : "theirs", "data-testid": "chat-message",
                            "data-mine": String(message.mine) },
      el("span", { class: "chat-who" }, who), " ",
      // textContent only: a link stays text, markup stays text
      el("span", { class: "chat-text" }, message.text));
    list.append(item);
    item.scrollIntoView({ block: "nearest" });
  };
  const onMessage = (event) => render(event.detail);
  chat.addEventListener("message", onMessage);
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
    for (const item of list.querySelectorAll("li.mine .chat-who")) item.textContent = t("chat.you");
  });
  return {
    root,
    destroy() {
      chat.removeEventListener("message", onMessage);
      if (stopLanguage) stopLanguage();
      if (dialog && dialog.open) dialog.close();
      root.remove();
    },
  };
}
