// The kiosk's own document viewer: a received document is shown on the page itself, never in
// the browser's PDF viewer (which has download and menu buttons) and never from a blob: address
// the customer could navigate to or save.
//
//   const viewer = openDocumentViewer({ name, type, bytes, onClose });
//   await viewer.ready;      // pages drawn (or the "cannot be shown" text)
//   viewer.print();          // a print-only copy of the pages, window.print(), then gone
//   viewer.close();          // everything dropped: canvases zeroed, URLs revoked, PDF.js freed
//
// PDFs: PDF.js (pdfjs-dist 4.x, /static/vendor/pdf.min.mjs) draws each page into a <canvas>;
// its worker comes from /static/vendor/pdf.worker.min.mjs ('self' under the page's CSP) and it
// runs with isEvalSupported: false (script-src has no 'unsafe-eval'). JPEG and PNG: an <img>
// from an object URL that lives only while the viewer is open. Anything else: a sentence.
//
// Print allowed, save not: no link, no download attribute, no context menu, no dragging out.
// Printing renders the pages once more at print resolution into an element that only the
// print style sheet shows, calls window.print() and removes it again.

import { addStrings, language, onLanguageChange, t } from "./i18n.js";

addStrings({
  fi: {
    "viewer.print": "Tulosta",
    "viewer.close": "Sulje asiakirja",
    "viewer.loading": "Avataan asiakirjaa…",
    "viewer.failed": "Asiakirjaa ei voitu näyttää. Pyydä asiantuntijalta apua.",
    "viewer.noPreview": "Tätä asiakirjaa ei voi näyttää tässä. Voit pyytää asiantuntijalta paperin.",
    "viewer.pages": "Asiakirjan sivut",
    "viewer.page": "Sivu {n} / {total}",
    "viewer.printing": "Tulostetaan…",
  },
  sv: {
    "viewer.print": "Skriv ut",
    "viewer.close": "Stäng dokumentet",
    "viewer.loading": "Dokumentet öppnas…",
    "viewer.failed": "Dokumentet kunde inte visas. Be den sakkunniga om hjälp.",
    "viewer.noPreview": "Det här dokumentet kan inte visas här. Du kan be den sakkunniga om en papperskopia.",
    "viewer.pages": "Dokumentets sidor",
    "viewer.page": "Sida {n} av {total}",
    "viewer.printing": "Skriver ut…",
  },
  en: {
    "viewer.print": "Print",
    "viewer.close": "Close the document",
    "viewer.loading": "Opening the document…",
    "viewer.failed": "The document could not be shown. Please ask the expert for help.",
    "viewer.noPreview": "This document cannot be shown here. You can ask the expert for a paper copy.",
    "viewer.pages": "Pages of the document",
    "viewer.page": "Page {n} of {total}",
    "viewer.printing": "Printing…",
  },
});

const PDF_JS = "/static/vendor/pdf.min.mjs";
const PDF_WORKER = "/static/vendor/pdf.worker.min.mjs";
const IMAGE_TYPES = new Set(["image/jpeg", "image/png"]);
// Screen pages are drawn at most this many device pixels wide; print pages at 150 dpi.
const MAX_SCREEN_WIDTH = 2400;
const PRINT_SCALE = 150 / 72;

export const VIEWABLE_TYPES = new Set(["application/pdf", ...IMAGE_TYPES]);

const STYLE = `
dialog.doc-viewer { position: fixed; inset: 0; width: 100vw; height: 100vh; max-width: none;
  max-height: none; margin: 0; padding: 0; border: 0; background: #3b3f46; color: #111;
  display: grid; grid-template-rows: auto 1fr; font-size: clamp(18px, 2vw, 26px); }
dialog.doc-viewer:not([open]) { display: none; }
dialog.doc-viewer::backdrop { background: #3b3f46; }
.doc-viewer-bar { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem 1rem;
  padding: .6rem 1rem; background: #fff; border-bottom: 3px solid #003580; }
.doc-viewer-title { flex: 1 1 12rem; min-width: 0; margin: 0; font-size: 1.15em;
  overflow-wrap: anywhere; }
.doc-viewer-bar button { min-height: 72px; min-width: 9rem; padding: .5rem 1.4rem;
  font-size: 1.1em; font-weight: 700; border-radius: 14px; border-width: 3px; }
.doc-viewer-pages { overflow: auto; padding: 1rem; display: flex; flex-direction: column;
  align-items: center; gap: 1rem; outline-offset: -6px; }
.doc-viewer-pages canvas, .doc-viewer-pages img { display: block; background: #fff;
  max-width: 100%; height: auto; box-shadow: 0 2px 8px rgba(0,0,0,.5);
  -webkit-user-drag: none; user-select: none; }
.doc-viewer-pages img { width: min(100%, 1100px); image-rendering: auto; }
@media (max-width: 600px) {
  .doc-viewer-title { flex-basis: 100%; }
  .doc-viewer-bar button { flex: 1 1 0; min-width: 0; min-height: 60px; padding: .4rem .6rem; }
}
.doc-viewer-message { background: #fff; color: #111; padding: 1rem 1.4rem; border-radius: 12px;
  font-size: 1.1em; font-weight: 600; max-width: 40em; }
.doc-viewer-pageno { color: #fff; margin: -.6rem 0 0; font-size: .9em; }
.doc-print-area { display: none; }
@media print {
  body > *:not(.doc-print-area) { display: none !important; }
  .doc-print-area { display: block !important; }
  .doc-print-area canvas, .doc-print-area img { display: block; width: 100%; height: auto;
    break-after: page; page-break-after: always; }
  .doc-print-area > :last-child { break-after: auto; page-break-after: auto; }
}
`;

function installStyle() {
  if (document.getElementById("doc-viewer-style")) return;
  const style = document.createElement("style");
  style.id = "doc-viewer-style";
  style.textContent = STYLE;
  document.head.append(style);
}

let pdfjsLoading = null;

/** PDF.js, loaded on first use (350 kB) with its worker from our own origin. */
export function loadPdfJs() {
  if (!pdfjsLoading) {
    pdfjsLoading = import(PDF_JS).then((pdfjs) => {
      pdfjs.GlobalWorkerOptions.workerSrc = PDF_WORKER;
      return pdfjs;
    }).catch((error) => {
      pdfjsLoading = null;
      throw error;
    });
  }
  return pdfjsLoading;
}

/** Release a canvas's pixels now rather than when the garbage collector gets to it. */
function wipeCanvas(canvas) {
  try {
    const ctx = canvas.getContext("2d");
    if (ctx) ctx.clearRect(0, 0, canvas.width, canvas.height);
  } catch {
    /* already released */
  }
  canvas.width = 0;
  canvas.height = 0;
  canvas.remove();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

/** Every viewer open now, so that `closeAllViewers()` can clear them when a call ends. */
const open = new Set();

export function closeAllViewers() {
  for (const viewer of [...open]) viewer.close();
}

/**
 * Open `bytes` (Uint8Array, the decrypted document) of MIME `type` in a full-screen modal
 * viewer. The viewer works on its own copy of the bytes and wipes it when closed; the caller
 * keeps (and wipes) its own. `returnFocus`: the element focused again after closing.
 */
export function openDocumentViewer({ name, type, bytes, onClose = null, returnFocus = null }) {
  installStyle();
  const own = new Uint8Array(bytes); // a copy: PDF.js transfers what it is given to its worker
  const texts = [];
  const text = (node, key, vars) => {
    texts.push([node, key, vars]);
    node.textContent = t(key, vars);
    return node;
  };
  const titleId = `doc-viewer-title-${Math.random().toString(36).slice(2)}`;
  const title = el("h2", { class: "doc-viewer-title", id: titleId });
  title.textContent = name || "";
  const printButton = text(el("button", { type: "button", class: "doc-viewer-print",
                                          "data-testid": "viewer-print" }), "viewer.print");
  const closeButton = text(el("button", { type: "button", class: "doc-viewer-close secondary",
                                          "data-testid": "viewer-close" }), "viewer.close");
  const pages = el("div", { class: "doc-viewer-pages", tabindex: "0", role: "region",
                            "data-testid": "viewer-pages" });
  const pagesLabel = () => pages.setAttribute("aria-label", t("viewer.pages"));
  pagesLabel();
  const status = text(el("p", { class: "doc-viewer-message", role: "status" }), "viewer.loading");
  pages.append(status);
  const dialog = el("dialog", { class: "doc-viewer", "aria-labelledby": titleId,
                                "data-testid": "doc-viewer", lang: language() },
    el("div", { class: "doc-viewer-bar" }, title, printButton, closeButton), pages);
  // Save not: no context menu ("Save image as…"), no dragging the picture out.
  dialog.addEventListener("contextmenu", (event) => event.preventDefault());
  dialog.addEventListener("dragstart", (event) => event.preventDefault());
  document.body.append(dialog);

  let closed = false;
  let pdf = null;
  let loadingTask = null;
  let objectUrl = null;
  const canvases = [];
  const renderTasks = new Set();
  printButton.disabled = true;

  const stopLanguage = onLanguageChange(() => {
    for (const [node, key, vars] of texts) node.textContent = t(key, vars);
    pagesLabel();
    dialog.lang = language();
  });

  async function drawPage(pageNumber, scale, canvas) {
    const page = await pdf.getPage(pageNumber);
    const viewport = page.getViewport({ scale });
    canvas.width = Math.max(1, Math.floor(viewport.width));
    canvas.height = Math.max(1, Math.floor(viewport.height));
    const task = page.render({ canvasContext: canvas.getContext("2d"), viewport });
    renderTasks.add(task);
    try {
      await task.promise;
    } finally {
      renderTasks.delete(task);
      page.cleanup();
    }
  }

  async function showPdf() {
    const pdfjs = await loadPdfJs();
    if (closed) return;
    loadingTask = pdfjs.getDocument({
      data: new Uint8Array(own), isEvalSupported: false, disableFontFace: false,
      useSystemFonts: false, enableXfa: false, stopAtErrors: false,
    });
    pdf = await loadingTask.promise;
    if (closed) return;
    status.remove();
    const width = Math.max(320, pages.clientWidth - 32);
    const ratio = Math.min(window.devicePixelRatio || 1, 2);
    for (let n = 1; n <= pdf.numPages && !closed; n++) {
      const page = await pdf.getPage(n);
      const base = page.getViewport({ scale: 1 });
      const cssWidth = Math.min(width, 1100);
      const scale = Math.min((cssWidth * ratio) / base.width, MAX_SCREEN_WIDTH / base.width);
      const canvas = el("canvas", { "data-page": String(n), role: "img" });
      canvas.setAttribute("aria-label", `${name || ""} — ${t("viewer.page", { n, total: pdf.numPages })}`);
      canvas.style.width = `${cssWidth}px`;
      canvases.push(canvas);
      pages.append(canvas);
      if (pdf.numPages > 1) {
        pages.append(text(el("p", { class: "doc-viewer-pageno" }), "viewer.page",
                          { n, total: pdf.numPages }));
      }
      await drawPage(n, scale, canvas);
    }
  }

  function showImage() {
    objectUrl = URL.createObjectURL(new Blob([own], { type }));
    const img = el("img", { alt: name || "", draggable: "false" });
    const loaded = new Promise((resolve, reject) => {
      img.addEventListener("load", resolve, { once: true });
      img.addEventListener("error", reject, { once: true });
    });
    img.src = objectUrl;
    status.remove();
    pages.append(img);
    return loaded;
  }

  const ready = (async () => {
    try {
      if (type === "application/pdf") await showPdf();
      else if (IMAGE_TYPES.has(type)) await showImage();
      else {
        texts.push([status, "viewer.noPreview"]);
        status.textContent = t("viewer.noPreview");
        return false;
      }
      printButton.disabled = closed;
      return !closed;
    } catch (error) {
      if (closed) return false;
      console.warn("document viewer:", error && error.message);
      if (!status.isConnected) pages.prepend(status);
      texts.push([status, "viewer.failed"]);
      status.textContent = t("viewer.failed");
      return false;
    }
  })();

  async function print() {
    if (closed || !(await ready) || closed) return false;
    const area = el("div", { class: "doc-print-area", "aria-hidden": "true" });
    const printCanvases = [];
    try {
      if (pdf) {
        for (let n = 1; n <= pdf.numPages; n++) {
          const canvas = el("canvas", {});
          printCanvases.push(canvas);
          area.append(canvas);
          await drawPage(n, PRINT_SCALE, canvas);
          if (closed) return false;
        }
      } else if (objectUrl) {
        area.append(el("img", { src: objectUrl, alt: "" }));
      }
      document.body.append(area);
      window.print(); // blocks until the print dialog (or kiosk printing) is done
      return true;
    } finally {
      for (const canvas of printCanvases) wipeCanvas(canvas);
      for (const img of area.querySelectorAll("img")) img.removeAttribute("src");
      area.remove();
    }
  }

  function close() {
    if (closed) return;
    closed = true;
    open.delete(viewer);
    stopLanguage();
    for (const task of renderTasks) task.cancel();
    for (const canvas of canvases) wipeCanvas(canvas);
    canvases.length = 0;
    for (const img of dialog.querySelectorAll("img")) img.removeAttribute("src");
    if (objectUrl) URL.revokeObjectURL(objectUrl);
    objectUrl = null;
    if (loadingTask) loadingTask.destroy().catch(() => {});
    else if (pdf) pdf.destroy().catch(() => {});
    pdf = null;
    loadingTask = null;
    own.fill(0);
    if (dialog.open) dialog.close();
    dialog.remove();
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
    if (onClose) onClose();
  }

  printButton.addEventListener("click", () => { print(); });
  closeButton.addEventListener("click", close);
  // Escape closes the viewer as the Close button does (and clears it).
  dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(); });

  const viewer = { dialog, ready, print, close, get closed() { return closed; } };
  open.add(viewer);
  dialog.showModal();
  closeButton.focus();
  return viewer;
}

/** Open the document and print it as soon as it is drawn; the viewer stays open. */
export function printDocument(options) {
  const viewer = openDocumentViewer(options);
  viewer.ready.then((ok) => ok && viewer.print());
  return viewer;
}

// Debug hook for tests: how many viewers are open now.
window.__etapalvelu = window.__etapalvelu || {};
window.__etapalvelu.openViewers = () => open.size;
