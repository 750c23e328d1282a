// The call-control bar of the expert and interpreter consoles: microphone, camera, which
// picture is the main view (customer ↔ document camera), the document camera full screen,
// the expert's screen shared into the call, and the bar's small panels (interpreter request,
// transfer). Keyboard: every control is a button in the bar; Alt+M microphone, Alt+K camera,
// Alt+V swap, Alt+N full screen, Alt+J share the screen, Escape closes a panel or leaves full
// screen.

import { onLanguageChange, t } from "/static/common/js/i18n.js";

const $ = (id) => document.getElementById(id);

export class CallControls {
  /** panel: () => the page's CallPanel (or null before the first call). */
  constructor({ panel }) {
    this.panel = panel;
    this.stage = $("call-stage");
    this.doccam = $("doccam");
    this.full = false;
    $("mute")?.addEventListener("click", () => this.toggleLocal("audio", $("mute")));
    $("camera-off")?.addEventListener("click", () => this.toggleLocal("video", $("camera-off")));
    $("swap-view")?.addEventListener("click", () => this.swap());
    $("doccam-thumb")?.addEventListener("click", () => this.setMain("document"));
    $("doccam-full")?.addEventListener("click", () => this.setFull(!this.full));
    $("doccam-exit-full")?.addEventListener("click", () => this.setFull(false));
    $("share-screen")?.addEventListener("click", () => this.toggleScreen($("share-screen")));
    for (const toggle of document.querySelectorAll(".control-bar [aria-controls]")) {
      toggle.addEventListener("click", () => this.togglePanel(toggle));
    }
    for (const close of document.querySelectorAll("[data-close-panel]")) {
      close.addEventListener("click", () => this.closePanels({ focus: true }));
    }
    // The customer's tile as a thumbnail: a click brings it back as the main view.
    $("tile-customer")?.addEventListener("click", () => {
      if (this.stage?.dataset.main === "document") this.setMain("customer");
    });
    document.addEventListener("fullscreenchange", () => {
      if (!document.fullscreenElement && this.full) this.setFull(false, { fromEvent: true });
    });
    document.addEventListener("keydown", (event) => this.onKey(event));
    onLanguageChange(() => this.render());
    this.render();
  }

  inCall() {
    const view = $("view-call");
    return Boolean(view && !view.hidden);
  }

  onKey(event) {
    if (!this.inCall()) return;
    if (event.key === "Escape") {
      if (this.full) {
        this.setFull(false);
        event.preventDefault();
      } else if (this.openPanel()) {
        this.closePanels({ focus: true });
        event.preventDefault();
      }
      return;
    }
    if (!event.altKey || event.ctrlKey || event.metaKey) return;
    const actions = {
      m: () => $("mute")?.click(), k: () => $("camera-off")?.click(),
      v: () => this.swap(), n: () => this.setFull(!this.full),
      j: () => $("share-screen")?.click(),
    };
    const action = actions[event.key.toLowerCase()];
    if (action) {
      action();
      event.preventDefault();
    }
  }

  toggleLocal(kind, button) {
    const panel = this.panel();
    const off = button.getAttribute("aria-pressed") !== "true";
    if (!panel || !panel.setLocalEnabled(kind, !off)) return;
    button.setAttribute("aria-pressed", String(off));
  }

  /** Microphone and camera on again (a new call starts with both on, sharing nothing). */
  resetLocal() {
    const panel = this.panel();
    for (const [kind, id] of [["audio", "mute"], ["video", "camera-off"]]) {
      panel?.setLocalEnabled(kind, true);
      $(id)?.setAttribute("aria-pressed", "false");
    }
    $("share-screen")?.setAttribute("aria-pressed", "false");
  }

  /** Share the expert's screen into the call (e.g. to guide the customer through an
   * e-service), or stop: the kiosk shows it large and returns to his face when it stops.
   * The browser asks which screen or window; stopping from the browser's own bar works too. */
  async toggleScreen(button) {
    const media = this.panel()?.media;
    if (!media || this.sharing) return;
    this.sharing = true;
    try {
      if (media.screen) {
        await media.stopScreen();
        button.setAttribute("aria-pressed", "false");
        return;
      }
      let stream;
      try {
        stream = await navigator.mediaDevices.getDisplayMedia({
          video: { frameRate: { ideal: 10, max: 15 } }, audio: false });
      } catch (error) {
        // The expert chose nothing (NotAllowedError) or the browser cannot share.
        if (error && error.name !== "NotAllowedError") console.warn("getDisplayMedia", error);
        return;
      }
      const track = stream.getVideoTracks()[0];
      if (!track) return;
      track.contentHint = "detail";
      track.addEventListener("ended", () => {
        if (media.screen !== track) return;
        media.stopScreen().catch(() => {});
        button.setAttribute("aria-pressed", "false");
      });
      await media.shareScreen(track);
      button.setAttribute("aria-pressed", "true");
    } catch (error) {
      console.warn("screen sharing", error);
    } finally {
      this.sharing = false;
    }
  }

  swap() {
    this.setMain(this.stage?.dataset.main === "document" ? "customer" : "document");
  }

  setMain(which) {
    if (!this.stage) return;
    this.stage.dataset.main = which;
    // The thumbnail's own controls are out of the tab order; the main view's are in it.
    const thumbDoc = which !== "document";
    for (const el of this.doccam.querySelectorAll(".doccam-bar button")) {
      if (thumbDoc) el.setAttribute("tabindex", "-1");
      else el.removeAttribute("tabindex");
    }
    $("doccam-viewport")?.setAttribute("tabindex", thumbDoc ? "-1" : "0");
    this.doccam.toggleAttribute("data-thumb", thumbDoc);
    $("tile-customer")?.toggleAttribute("data-thumb", !thumbDoc);
    this.render();
    // A thumbnail shows the whole page; zoom is for the main and the full-screen view.
    if (thumbDoc) this.panel()?.viewer?.reset();
    else this.panel()?.viewer?.apply();
  }

  async setFull(on, { fromEvent = false } = {}) {
    if (!this.doccam) return;
    this.full = on;
    this.doccam.classList.toggle("is-full", on);
    $("doccam-full")?.setAttribute("aria-pressed", String(on));
    if (on) {
      // The browser's own full screen where it is allowed; the page-filling view otherwise.
      try {
        await this.doccam.requestFullscreen?.();
      } catch {
        /* the fixed, page-filling view stays */
      }
      $("doccam-viewport")?.focus({ preventScroll: true });
    } else {
      if (!fromEvent && document.fullscreenElement) {
        await document.exitFullscreen().catch(() => {});
      }
      $("doccam-full")?.focus({ preventScroll: true });
    }
    // The picture is laid out again for the new size.
    requestAnimationFrame(() => this.panel()?.viewer?.apply());
  }

  openPanel() {
    return [...document.querySelectorAll(".bar-panel")].find((p) => !p.hidden) || null;
  }

  togglePanel(toggle) {
    const target = $(toggle.getAttribute("aria-controls"));
    if (!target) return;
    const open = target.hidden;
    this.closePanels();
    if (open) {
      target.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
      target.querySelector("select, input, button")?.focus();
    }
  }

  closePanels({ focus = false } = {}) {
    const open = this.openPanel();
    for (const toggle of document.querySelectorAll(".control-bar [aria-controls]")) {
      toggle.setAttribute("aria-expanded", "false");
      if (focus && open && toggle.getAttribute("aria-controls") === open.id) toggle.focus();
    }
    for (const p of document.querySelectorAll(".bar-panel")) p.hidden = true;
  }

  /** A call ended or began: the customer as the main view, no panels, not full screen. */
  resetView() {
    this.closePanels();
    if (this.full) this.setFull(false);
    this.setMain("customer");
  }

  render() {
    const main = this.stage?.dataset.main || "customer";
    const text = document.querySelector("#swap-view .swap-text");
    if (text) {
      text.dataset.i18n = main === "document" ? "console.bar.showCustomer" : "console.bar.showDocument";
      text.textContent = t(text.dataset.i18n);
    }
    if (this.doccam) this.doccam.dataset.label = t("console.call.documentCamera");
  }
}
