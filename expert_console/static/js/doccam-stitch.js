// Stitching a large sheet (A2, A1) during a call (signaling/in_call/stitch_requests.py,
// endpoint/stitch_session.py).
//
// The clerk: each call row with the document camera gets a sheet size and "Stitch a large
// sheet". Pressing it sends `document_camera:stitch {call_id, sheet}`; the office's agent then
// guides him tile by tile through `document_camera:stitch_progress` pushes, shown in the
// #clerk-stitch box: which part of the sheet to lay under the camera (a small grid diagram
// with that tile highlighted), "hold still", stitching, done, or the library's reason for a
// refusal, with Cancel and Capture again.
//
// The expert: the stitched sheet arrives in his documents as a still from the document camera
// (`sheet-A2-….jpg`); it is labelled as a stitched sheet and opens in a viewer that zooms and
// pans over its full resolution (SheetViewer).
//
//   const stitcher = new SheetStitcher(box, { socket: () => ctx.socket });
//   stitcher.attach(socket);                       // listens for the progress pushes
//   row.append(stitcher.rowControls(call, label)); // in each call row (camera connected)
//   watchStitchedSheets(document.body);            // the expert's documents

import { localName, t } from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";
import { errorText, notify } from "./console-app.js";
import { request } from "./session.js";

export const SHEETS = ["A2", "A1"];
const SHEET_NAME = /^sheet-(A[0-4])-\d{8}-\d{6}-\d{3}\.(jpg|png)$/;
const RUNNING = new Set(["requested", "place", "hold_still", "stitching"]);

/** Names of the rows (top…bottom) or the columns (left…right) of an n-part grid. */
function positions(n, vertical) {
  const ends = vertical ? ["top", "bottom"] : ["left", "right"];
  if (n === 1) return ["middle"];
  if (n === 2) return ends;
  if (n === 3) return [ends[0], "middle", ends[1]];
  if (n === 4) return [ends[0], vertical ? "upper" : "leftOfCentre",
                       vertical ? "lower" : "rightOfCentre", ends[1]];
  return Array.from({ length: n }, (_, i) => (i === 0 ? ends[0] : i === n - 1 ? ends[1] : "middle"));
}

/** "top middle", "middle" (the centre), "bottom right" in the UI language. */
export function tileWhere(row, col, rows, cols) {
  const v = positions(rows, true)[row];
  const h = positions(cols, false)[col];
  if (v === "middle" && h === "middle") return t("console.stitch.pos.middle");
  return `${t(`console.stitch.pos.${v}`)} ${t(`console.stitch.pos.${h}`)}`;
}

export class SheetStitcher {
  constructor(box, { authorityOf = () => "", onBusy = () => {} } = {}) {
    this.box = box;
    this.authorityOf = authorityOf;
    this.onBusy = onBusy; // a stitch started or ended: the rows' buttons follow
    this.busyCall = null;
    this.socket = null;
    // {callId, sheet, state, progress}: the stitch this console started or follows
    this.current = null;
    this.log = []; // every progress push, for tests
    this.onProgress = (progress) => this.progress(progress);
  }

  attach(socket) {
    if (this.socket) this.socket.off("document_camera:stitch_progress", this.onProgress);
    this.socket = socket;
    socket.on("document_camera:stitch_progress", this.onProgress);
  }

  /** The sheet size and the button for a call row (disabled without a camera). */
  rowControls(call, camera) {
    const id = `stitch-sheet-${call.id}`;
    const select = el("select", { id, name: "sheet", class: "stitch-sheet" },
      ...SHEETS.map((sheet) => el("option", { value: sheet, text: sheet })));
    if (this.current && this.current.callId === call.id) select.value = this.current.sheet;
    const busy = Boolean(this.current && this.current.callId === call.id
                         && RUNNING.has(this.current.state));
    const button = el("button", {
      type: "button", class: "stitch-row secondary", "data-call-id": String(call.id),
      text: t("console.stitch.start"),
      "aria-label": t("console.stitch.startLabel", { authority: this.authorityOf(call) }),
      onclick: () => this.start(call.id, select.value),
    });
    button.disabled = !camera || busy;
    select.disabled = !camera || busy;
    return el("span", { class: "stitch-controls" },
      el("label", { for: id, text: t("console.stitch.sheet") }), select, button);
  }

  async start(callId, sheet) {
    this.current = { callId, sheet, state: "requested", progress: null };
    this.render();
    this.box.scrollIntoView({ block: "nearest" });
    try {
      await request(this.socket, "document_camera:stitch", { call_id: callId, sheet });
      notify(t("console.stitch.requested"));
    } catch (error) {
      this.current = null;
      this.render();
      notify(errorText(error), "warn");
    }
  }

  async cancel() {
    if (!this.current) return;
    try {
      await request(this.socket, "document_camera:stitch_cancel", { call_id: this.current.callId });
    } catch (error) {
      notify(errorText(error), "warn");
    }
  }

  close() {
    this.current = null;
    this.render();
  }

  /** The call has ended: its stitch with it. */
  callEnded(callId) {
    if (this.current && this.current.callId === callId) this.close();
  }

  progress(progress) {
    this.log.push(progress);
    const current = this.current;
    // Only the clerk who started it sees the box open; another console follows it too.
    if (!current || current.callId !== progress.call_id) {
      this.current = { callId: progress.call_id, sheet: progress.sheet, state: progress.state, progress };
    } else {
      Object.assign(current, { sheet: progress.sheet, state: progress.state, progress });
    }
    this.render();
  }

  render() {
    const box = this.box;
    const current = this.current;
    const busy = current && RUNNING.has(current.state) ? current.callId : null;
    if (busy !== this.busyCall) {
      this.busyCall = busy;
      this.onBusy();
    }
    if (!current) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const p = current.progress;
    const of = p ? p.of : 0;
    box.hidden = false;
    box.dataset.state = current.state;
    box.dataset.callId = String(current.callId);
    box.dataset.tile = p ? String(p.tile) : "";
    const heading = el("h3", { id: "clerk-stitch-title",
      text: t("console.stitch.title", { sheet: current.sheet, n: of || "…" }) });
    const parts = [heading];
    if (p) parts.push(this.diagram(p));
    const instruction = el("p", { class: "stitch-instruction", id: "clerk-stitch-instruction" });
    const status = el("p", { class: "stitch-status", id: "clerk-stitch-status",
                             role: "status", "aria-live": "polite" });
    const state = current.state;
    if (p && (state === "place" || state === "hold_still")) {
      instruction.textContent = t("console.stitch.tile", {
        n: p.tile, of, where: tileWhere(p.row, p.col, p.rows, p.cols), row: p.row + 1, col: p.col + 1 });
      instruction.append(el("span", { class: "stitch-help", text: ` ${t("console.stitch.place")}` }));
      status.textContent = state === "hold_still"
        ? t(`console.stitch.hold_still.${p.code === "blurred" ? "blurred" : "moving"}`)
        : `${t("console.stitch.waiting")} ${t("console.stitch.captured", { n: p.captured, of })}`;
      parts.push(instruction);
    } else if (state === "requested") {
      status.textContent = t("console.stitch.waiting");
    } else if (state === "stitching") {
      status.textContent = t("console.stitch.stitching");
    } else if (state === "done") {
      status.textContent = t("console.stitch.done", { width: p.width, height: p.height });
    } else if (state === "refused") {
      // The library's own reason, in the UI language, and its technical detail.
      status.textContent = t("console.stitch.refused");
      parts.push(status, el("p", { class: "stitch-reason warn", "data-code": p.code,
        text: p.text ? localName({ name: p.text }) : p.code }),
        el("p", { class: "stitch-detail", text: p.detail || "" }));
    } else if (state === "cancelled") {
      status.textContent = t("console.stitch.cancelled");
    } else if (state === "failed") {
      status.textContent = t(`console.stitch.failed.${p.code}`);
      if (p.detail) parts.push(status, el("p", { class: "stitch-detail", text: p.detail }));
    }
    if (!parts.includes(status)) parts.push(status);
    const actions = el("p", { class: "inline-form stitch-actions" });
    if (RUNNING.has(state)) {
      actions.append(el("button", { type: "button", id: "clerk-stitch-cancel", class: "secondary",
        text: t("console.stitch.cancel"), onclick: () => this.cancel() }));
    } else {
      if (state !== "done") {
        actions.append(el("button", { type: "button", id: "clerk-stitch-retry", class: "primary-action",
          text: t("console.stitch.retry"), onclick: () => this.start(current.callId, current.sheet) }));
      }
      actions.append(el("button", { type: "button", id: "clerk-stitch-close", class: "secondary",
        text: t("console.stitch.close"), onclick: () => this.close() }));
    }
    parts.push(actions);
    const focused = document.activeElement && box.contains(document.activeElement)
      ? document.activeElement.id : null;
    box.replaceChildren(...parts);
    if (focused) {
      const again = document.getElementById(focused)
        || box.querySelector("#clerk-stitch-retry, #clerk-stitch-close");
      again?.focus({ preventScroll: true });
    }
  }

  /** The sheet as rows × cols shots: taken ones ticked, the one asked for highlighted. */
  diagram(p) {
    const grid = el("div", { class: "stitch-grid", role: "img",
      "aria-label": t("console.stitch.diagram"),
      style: `grid-template-columns: repeat(${p.cols}, 1fr)` });
    for (let k = 0; k < p.of; k += 1) {
      const current = k === p.tile - 1 && ["place", "hold_still"].includes(p.state);
      const taken = k < p.captured;
      grid.append(el("span", { class: `stitch-cell${current ? " current" : ""}${taken ? " taken" : ""}`,
                               "data-tile": String(k + 1), text: taken ? "✓" : String(k + 1) }));
    }
    return grid;
  }
}

// ---- the expert: the stitched sheet in his documents ----------------------------------------

/** Label stitched sheets in the documents list and give them the zooming viewer. */
export function watchStitchedSheets(root) {
  root.addEventListener("document-received", (event) => {
    const detail = event.detail || {};
    const match = SHEET_NAME.exec(detail.name || "");
    if (!match || !String(detail.sender || "").startsWith("doccam-")) return;
    const sheet = match[1];
    const item = [...document.querySelectorAll("[data-testid=documents-item]")]
      .find((node) => node.dataset.sha256 === detail.sha256);
    const link = item && item.querySelector("[data-testid=documents-save]");
    if (!item || !link) return;
    item.classList.add("documents-sheet");
    const open = el("button", { type: "button", class: "documents-sheet-open",
      text: t("console.stitch.open"), onclick: () => openSheet(link.href, sheet, open) });
    item.prepend(el("span", { class: "documents-sheet-label", text: t("console.stitch.received", { sheet }) }), " ");
    (item.querySelector(".documents-actions") || item).prepend(open, " ");
    notify(t("console.stitch.arrived", { sheet }));
  });
}

let openViewer = null;

function openSheet(url, sheet, from) {
  if (openViewer) openViewer.close();
  openViewer = new SheetViewer(url, sheet, from);
  window.__etapalvelu = window.__etapalvelu || {};
  window.__etapalvelu.sheetViewer = openViewer;
}

/** A picture shown at any zoom from "the whole sheet" to 4× its own pixels; drag, wheel,
 * arrow keys, + / − / 0 / 1 and the buttons. */
export class SheetViewer {
  constructor(url, sheet, returnFocus = null) {
    this.returnFocus = returnFocus;
    this.scale = 1; // CSS pixels per image pixel
    this.fitScale = 1;
    this.x = 0; // the image pixel at the view's centre
    this.y = 0;
    this.image = el("img", { src: url, alt: t("console.stitch.viewer", { sheet }), draggable: "false" });
    this.view = el("div", { class: "sheet-view", tabindex: "0", role: "application",
                            "aria-label": t("console.stitch.viewer", { sheet }) }, this.image);
    this.level = el("output", { class: "sheet-zoom-level", "aria-live": "polite" });
    const button = (text, onclick, cls = "secondary") => el("button", { type: "button", class: cls, text, onclick });
    this.dialog = el("dialog", { class: "sheet-viewer", "aria-label": t("console.stitch.viewer", { sheet }) },
      el("div", { class: "sheet-toolbar" },
        el("h3", { text: t("console.stitch.viewer", { sheet }) }),
        button(t("console.stitch.zoomOut"), () => this.zoom(0.8)),
        this.level,
        button(t("console.stitch.zoomIn"), () => this.zoom(1.25)),
        button(t("console.stitch.fit"), () => this.fit()),
        button(t("console.stitch.actual"), () => this.setScale(1)),
        button(t("console.stitch.close"), () => this.close(), "sheet-close")),
      this.view);
    document.body.append(this.dialog);
    let drag = null;
    this.view.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY };
      this.view.setPointerCapture?.(e.pointerId);
    });
    this.view.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.panBy(e.clientX - drag.x, e.clientY - drag.y);
      drag = { x: e.clientX, y: e.clientY };
    });
    this.view.addEventListener("pointerup", () => { drag = null; });
    this.view.addEventListener("pointercancel", () => { drag = null; });
    this.view.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
    this.view.addEventListener("keydown", (e) => {
      const moves = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] };
      if (moves[e.key]) this.panBy(...moves[e.key]);
      else if (e.key === "+" || e.key === "=") this.zoom(1.25);
      else if (e.key === "-") this.zoom(0.8);
      else if (e.key === "0") this.fit();
      else if (e.key === "1") this.setScale(1);
      else return;
      e.preventDefault();
    });
    this.dialog.addEventListener("close", () => this.close());
    this.ready = new Promise((resolve) => {
      this.image.addEventListener("load", () => { this.fit(); resolve(true); }, { once: true });
      this.image.addEventListener("error", () => resolve(false), { once: true });
    });
    this.dialog.showModal();
    this.view.focus();
  }

  get naturalWidth() { return this.image.naturalWidth; }

  get naturalHeight() { return this.image.naturalHeight; }

  fit() {
    const w = this.view.clientWidth || 1;
    const h = this.view.clientHeight || 1;
    this.fitScale = Math.min(w / (this.naturalWidth || 1), h / (this.naturalHeight || 1), 1);
    this.x = this.naturalWidth / 2;
    this.y = this.naturalHeight / 2;
    this.setScale(this.fitScale);
  }

  zoom(factor) {
    this.setScale(this.scale * factor);
  }

  setScale(scale) {
    this.scale = Math.min(4, Math.max(this.fitScale, scale));
    this.apply();
  }

  panBy(dx, dy) {
    this.x -= dx / this.scale;
    this.y -= dy / this.scale;
    this.apply();
  }

  /** The part of the image in view, in image pixels (for tests). */
  visible() {
    const w = this.view.clientWidth / this.scale;
    const h = this.view.clientHeight / this.scale;
    return { x: this.x - w / 2, y: this.y - h / 2, w, h, scale: this.scale };
  }

  apply() {
    const vw = this.view.clientWidth;
    const vh = this.view.clientHeight;
    const iw = this.naturalWidth * this.scale;
    const ih = this.naturalHeight * this.scale;
    // Panning stops at the edges; a picture smaller than the view stays in its middle.
    const half = (view, size) => Math.min(view / 2 / this.scale, size / 2);
    const clamp = (v, size, view) => Math.min(size - half(view, size), Math.max(half(view, size), v));
    this.x = clamp(this.x, this.naturalWidth, vw);
    this.y = clamp(this.y, this.naturalHeight, vh);
    const left = vw / 2 - this.x * this.scale;
    const top = vh / 2 - this.y * this.scale;
    this.image.style.width = `${iw}px`;
    this.image.style.height = `${ih}px`;
    this.image.style.transform = `translate(${left}px, ${top}px)`;
    this.level.textContent = t("console.stitch.zoomLevel", { percent: Math.round(this.scale * 100) });
  }

  close() {
    if (!this.dialog.isConnected) return;
    if (this.dialog.open) this.dialog.close();
    this.dialog.remove();
    if (openViewer === this) openViewer = null;
    this.returnFocus?.focus?.();
  }
}
