// The office's clerk in a call's text chat (issue 18). He is not a participant of the call:
// he publishes call keys of his own (`documents:key`, attested with role "clerk"), so the
// customer, the expert and an interpreter seal their messages to him too, and he reads and
// writes the chat end-to-end encrypted like them; he gets no documents. Closing the box (or
// the call ending) withdraws his keys (`chat:leave`), and the others stop sealing to him.
//
//   const chat = new ClerkChat(socket, { box, mount, title });
//   await chat.open(callId, "Kela");  ...  chat.isOpen(callId);  chat.prune(activeCallIds);
//   await chat.close();

import { addStrings, onLanguageChange, t } from "/static/common/js/i18n.js";
import { DocumentChannel } from "/static/common/js/document-channel.js";
import { CallChat, mountChat } from "/static/common/js/chat.js";
import { installStyle } from "/static/common/js/document-panel.js";

addStrings({
  fi: { "console.clerk.chat": "Viestit", "console.clerk.chatLabel": "Puhelun viestit: {authority}",
        "console.clerk.chatTitle": "Puhelun viestit: {authority}", "console.clerk.chatClose": "Sulje viestit" },
  sv: { "console.clerk.chat": "Meddelanden", "console.clerk.chatLabel": "Samtalets meddelanden: {authority}",
        "console.clerk.chatTitle": "Samtalets meddelanden: {authority}", "console.clerk.chatClose": "Stäng meddelandena" },
  en: { "console.clerk.chat": "Messages", "console.clerk.chatLabel": "Messages of the call: {authority}",
        "console.clerk.chatTitle": "Messages of the call: {authority}", "console.clerk.chatClose": "Close messages" },
});

export class ClerkChat {
  constructor(socket, { box, mount, title }) {
    this.socket = socket;
    this.box = box;
    this.mount = mount;
    this.title = title;
    this.current = null; // {callId, channel, chat, view}
    onLanguageChange(() => this.relabel());
  }

  isOpen(callId) {
    return Boolean(this.current && this.current.callId === callId);
  }

  async open(callId, label) {
    await this.close();
    installStyle();
    const channel = new DocumentChannel(this.socket, callId);
    const current = { callId, channel, chat: null, view: null, label };
    this.current = current;
    this.title.textContent = t("console.clerk.chatTitle", { authority: label });
    this.box.hidden = false;
    await channel.start();
    if (this.current !== current) { // closed meanwhile
      channel.destroy();
      return;
    }
    current.chat = new CallChat(channel);
    current.view = mountChat(this.mount, { chat: current.chat });
  }

  /** Say the title again (a language switch). */
  relabel() {
    if (this.current) {
      this.title.textContent = t("console.clerk.chatTitle", { authority: this.current.label });
    }
  }

  /** Close the box when its call is no longer active. */
  prune(activeCallIds) {
    if (this.current && !activeCallIds.includes(this.current.callId)) this.close();
  }

  async close() {
    const current = this.current;
    this.current = null;
    this.box.hidden = true;
    if (!current) return;
    if (current.view) current.view.destroy();
    if (current.chat) current.chat.destroy();
    current.channel.destroy();
    this.mount.replaceChildren();
    await new Promise((resolve) => {
      this.socket.emit("chat:leave", { call_id: current.callId }, () => resolve());
      setTimeout(resolve, 3000);
    });
  }
}
