// The document camera's picture in a console: zoom (1×–8×) and pan that follow the page.
//
// The document track's canvas follows the page (document_camera/track.py), and a frame may
// still carry black bars around the page; this view finds the page inside the frame (the part
// that is not the black bars, measured on a small copy of a frame every DETECT_MS) and fits
// *the page* to the view. Zoom and pan work on the page too: 100 % is the whole page in view,
// panning stops at its edges. Mouse or touch drag, the wheel, arrow keys, + / − / 0, and the
// buttons.
//
// Remote zoom (document_camera/zoom.py, `document_camera:view`): while zoomed in, the view
// tells the endpoint (through `setRemote(send)`, at most every REGION_MS and once more when a
// gesture stops) which part of the page is in view, and the camera then sends *that part* from
// its full resolution. Each such frame carries a marker strip at its bottom saying which part
// of the page it shows (`decodeMarker`), so the view always knows what a frame is: it draws
// every frame onto its canvas at that frame's place on the page, at the zoom and pan of this
// moment. A region frame is therefore shown 1:1 where the page-wide frame would have been
// magnified, a gesture moves the picture at once (the last frame moved and magnified, the last
// whole page underneath for what it does not cover), and the sharp frame replaces it when it
// arrives: no jump either way, and no guess about which frame answered which request.

import { onLanguageChange, t } from "/static/common/js/i18n.js";

const DETECT_MS = 1500;
const SAMPLE_LONG_SIDE = 160; // pixels of the small copy the page is found on
const BAR_LUMA = 24; // a row or column darker than this on average is letterbox
const MAX_ZOOM = 8;
const REGION_MS = 100; // remote zoom: at most one region per this, and the last one always
// The marker strip (document_camera/zoom.py): MARKER_HEIGHT rows, two lines of 40 cells of
// MARKER_CELL × MARKER_CELL px, one bit each.
export const MARKER_HEIGHT = 16;
const MARKER_CELL = 8;
const MARKER_BITS = 80;
const PER_LINE = MARKER_BITS / 2;
const MARKER_MAGIC = 0xa5;

function crc8(bytes) {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let i = 0; i < 8; i += 1) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

/** The page rectangle {x, y, w, h} that 80 marker bits (0/1) carry, or null. For tests. */
export function rectFromBits(bits) {
  if (bits.length < MARKER_BITS) return null;
  const bytes = [];
  for (let i = 0; i < MARKER_BITS; i += 8) {
    let byte = 0;
    for (let j = 0; j < 8; j += 1) byte = (byte << 1) | (bits[i + j] ? 1 : 0);
    bytes.push(byte);
  }
  if (bytes[0] !== MARKER_MAGIC || crc8(bytes.slice(0, 9)) !== bytes[9]) return null;
  const v = (i) => ((bytes[1 + 2 * i] << 8) | bytes[2 + 2 * i]) / 16384 - 1;
  const rect = { x: v(0), y: v(1), w: v(2), h: v(3) };
  return rect.w > 0 && rect.h > 0 ? rect : null;
}

/** The marker of a frame from RGBA `pixels` of its bottom MARKER_HEIGHT rows, `width` wide:
 *  {x, y, w, h} of the page, or null. Reads the middle of each cell. */
export function decodeMarker(pixels, width) {
  if (width < PER_LINE * MARKER_CELL) return null;
  const bits = [];
  for (let i = 0; i < MARKER_BITS; i += 1) {
    const line = Math.floor(i / PER_LINE);
    const col = i % PER_LINE;
    let sum = 0;
    let n = 0;
    for (let y = line * MARKER_CELL + 2; y < (line + 1) * MARKER_CELL - 2; y += 1) {
      for (let x = col * MARKER_CELL + 2; x < (col + 1) * MARKER_CELL - 2; x += 1) {
        const k = (y * width + x) * 4;
        sum += 0.299 * pixels[k] + 0.587 * pixels[k + 1] + 0.114 * pixels[k + 2];
        n += 1;
      }
    }
    bits.push(sum / n >= 128 ? 1 : 0);
  }
  return rectFromBits(bits);
}

/** The page's box inside a frame, in the frame's pixels: {x, y, w, h}. Exported for tests. */
export function findContentBox(pixels, width, height, threshold = BAR_LUMA) {
  const luma = (i) => 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
  const rowDark = (y) => {
    let sum = 0;
    for (let x = 0; x < width; x += 1) sum += luma((y * width + x) * 4);
    return sum / width < threshold;
  };
  const colDark = (x, y0, y1) => {
    let sum = 0;
    for (let y = y0; y < y1; y += 1) sum += luma((y * width + x) * 4);
    return sum / Math.max(1, y1 - y0) < threshold;
  };
  let top = 0;
  while (top < height - 1 && rowDark(top)) top += 1;
  let bottom = height;
  while (bottom > top + 1 && rowDark(bottom - 1)) bottom -= 1;
  let left = 0;
  while (left < width - 1 && colDark(left, top, bottom)) left += 1;
  let right = width;
  while (right > left + 1 && colDark(right - 1, top, bottom)) right -= 1;
  // An all-dark frame (camera covered, lamp off): show the whole frame.
  if (right - left < width * 0.1 || bottom - top < height * 0.1) {
    return { x: 0, y: 0, w: width, h: height };
  }
  return { x: left, y: top, w: right - left, h: bottom - top };
}

export class DocCamView {
  /**
   * viewport: the element the picture is shown in (focusable); video: the <video> inside it;
   * output: where "150 %" is written (optional).
   */
  constructor(viewport, video, output = null) {
    this.viewport = viewport;
    this.video = video;
    this.output = output;
    this.scale = 1; // 1 = the whole page in view
    this.cx = 0.5; // the point of the page at the view's centre (0..1 of the page)
    this.cy = 0.5;
    this.box = null; // the page inside a whole-page frame, in frame pixels
    this.frameRect = null; // the part of the page the current frame shows (null: all of it)
    this.pageAspect = null; // page width / height, from whichever frame told it last
    this.canvas = document.createElement("canvas"); // small copies, for finding the page
    // What is seen: every frame drawn at its place on the page (the video stays underneath).
    this.screen = document.createElement("canvas");
    this.screen.className = "doccam-screen";
    Object.assign(this.screen.style, {
      position: "absolute", left: "0", top: "0", width: "100%", height: "100%",
      pointerEvents: "none",
    });
    video.after(this.screen);
    this.backdrop = document.createElement("canvas"); // the last whole page
    this.hasBackdrop = false;
    this.strip = document.createElement("canvas");
    this.timer = null;
    this.listeners = new Set();
    // Remote zoom: send(region | null) → Promise; see setRemote().
    this.send = null;
    this.sentKey = "null";
    this.sentAt = -Infinity;
    this.pending = null;
    this.zoomLog = []; // {region, sentAt, detailAt}: when each region's sharp frame came
    this.frameCallback = null;
    let drag = null;
    viewport.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY };
      viewport.setPointerCapture?.(e.pointerId);
      viewport.classList.add("dragging");
    });
    viewport.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.panBy(e.clientX - drag.x, e.clientY - drag.y);
      drag = { x: e.clientX, y: e.clientY };
    });
    const stop = () => { drag = null; viewport.classList.remove("dragging"); };
    viewport.addEventListener("pointerup", stop);
    viewport.addEventListener("pointercancel", stop);
    viewport.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
    viewport.addEventListener("keydown", (e) => {
      const step = 40;
      const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step],
                      ArrowDown: [0, -step] };
      if (moves[e.key]) {
        this.panBy(...moves[e.key]);
      } else if (e.key === "+" || e.key === "=") {
        this.zoom(1.25);
      } else if (e.key === "-") {
        this.zoom(0.8);
      } else if (e.key === "0") {
        this.reset();
      } else {
        return;
      }
      e.preventDefault();
    });
    video.addEventListener("loadedmetadata", () => { this.onFrame(); this.detect(); this.apply(); });
    video.addEventListener("resize", () => { this.onFrame(); this.detect(); this.apply(); });
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.apply()).observe(viewport);
    }
    onLanguageChange(() => this.apply()); // the zoom level's "sharp picture" title
  }

  /**
   * Remote zoom on: `send(region)` tells the camera which part of the page is in view
   * ({x, y, w, h} in 0..1 of the page, or null for the whole page); it returns a promise.
   * Only the call's expert steers; other views still read the markers.
   */
  setRemote(send) {
    this.send = send;
    this.sentKey = "null";
    if (send) this.sendRegion(true);
  }

  /** Start finding the page in the frames (while a document track is shown). */
  start() {
    if (this.timer) return;
    this.detect();
    this.timer = setInterval(() => this.detect(), DETECT_MS);
    this.watchFrames();
    // A fresh track starts with the whole page: say what we look at now.
    this.sentKey = "";
    this.sendRegion(true);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.box = null;
    this.frameRect = null;
    this.hasBackdrop = false;
    this.reset();
    const g = this.screen.getContext("2d");
    g.clearRect(0, 0, this.screen.width, this.screen.height);
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every decoded frame: what part of the page it shows; then draw it. */
  watchFrames() {
    const v = this.video;
    if (this.frameCallback || !v.requestVideoFrameCallback) return;
    const next = () => {
      this.frameCallback = v.requestVideoFrameCallback(() => {
        this.onFrame();
        if (this.timer) next();
        else this.frameCallback = null;
      });
    };
    next();
  }

  onFrame() {
    const v = this.video;
    const fw = v.videoWidth;
    const fh = v.videoHeight;
    if (!fw || !fh) return;
    let rect = null;
    if (fw >= PER_LINE * MARKER_CELL && fh > MARKER_HEIGHT * 4) {
      const sw = PER_LINE * MARKER_CELL;
      this.strip.width = sw;
      this.strip.height = MARKER_HEIGHT;
      const g = this.strip.getContext("2d", { willReadFrequently: true });
      try {
        g.drawImage(v, 0, fh - MARKER_HEIGHT, sw, MARKER_HEIGHT, 0, 0, sw, MARKER_HEIGHT);
        rect = decodeMarker(g.getImageData(0, 0, sw, MARKER_HEIGHT).data, sw);
      } catch {
        return; // no frame decoded yet
      }
    }
    const was = this.frameRect;
    this.frameRect = rect;
    if (rect) {
      this.setAspect((fw / rect.w) / ((fh - MARKER_HEIGHT) / rect.h));
      const now = performance.now();
      for (const entry of this.zoomLog) {
        if (entry.detailAt === null && entry.region && covers(rect, entry.region)) {
          entry.detailAt = now;
        }
      }
    } else {
      // A whole-page frame: keep it to show under later region frames.
      const box = this.pageBox();
      this.backdrop.width = Math.max(1, Math.round(box.w));
      this.backdrop.height = Math.max(1, Math.round(box.h));
      this.backdrop.getContext("2d").drawImage(v, box.x, box.y, box.w, box.h, 0, 0,
        this.backdrop.width, this.backdrop.height);
      this.hasBackdrop = true;
      if (this.box) this.setAspect(this.box.w / this.box.h);
    }
    if (Boolean(was) !== Boolean(rect)) this.apply();
    else this.render();
  }

  /** Find the page inside the current (whole-page) frame; re-fit when it moved. */
  detect() {
    const v = this.video;
    const fw = v.videoWidth;
    const fh = v.videoHeight;
    if (!fw || !fh || this.frameRect) return; // a region frame is not the page's outline
    const k = SAMPLE_LONG_SIDE / Math.max(fw, fh);
    const w = Math.max(8, Math.round(fw * k));
    const h = Math.max(8, Math.round(fh * k));
    this.canvas.width = w;
    this.canvas.height = h;
    const g = this.canvas.getContext("2d", { willReadFrequently: true });
    let data;
    try {
      g.drawImage(v, 0, 0, w, h);
      data = g.getImageData(0, 0, w, h).data;
    } catch {
      return; // no frame decoded yet
    }
    const small = findContentBox(data, w, h);
    // Back to frame pixels; a one-sample margin inwards so no dark edge stays.
    const inset = small.w < w || small.h < h ? 1 : 0;
    const box = {
      x: (small.x + (small.x > 0 ? inset : 0)) / k,
      y: (small.y + (small.y > 0 ? inset : 0)) / k,
      w: Math.max(1, (small.w - (small.w < w ? 2 * inset : 0)) / k),
      h: Math.max(1, (small.h - (small.h < h ? 2 * inset : 0)) / k),
    };
    const old = this.box;
    const moved = !old || ["x", "y", "w", "h"].some((key) => Math.abs(old[key] - box[key]) > 4 / k);
    if (moved) {
      this.box = box;
      this.setAspect(box.w / box.h);
      this.apply();
    }
  }

  /** The page's shape changed (a new page): not for a pixel's jitter of the outline, which
   *  would move the region in view and ask the camera again for nothing. */
  setAspect(aspect) {
    if (!this.pageAspect || Math.abs(aspect / this.pageAspect - 1) > 0.02) {
      this.pageAspect = aspect;
    }
  }

  /** The page's box in whole-page frame pixels (the whole frame until one is found). */
  pageBox() {
    const fw = this.video.videoWidth || 1;
    const fh = this.video.videoHeight || 1;
    return this.box || { x: 0, y: 0, w: fw, h: fh };
  }

  /** The page's shape: width and height in any unit. */
  pageSize() {
    if (this.pageAspect) return { w: this.pageAspect * 1000, h: 1000 };
    const box = this.pageBox();
    return { w: box.w, h: box.h };
  }

  /** Where things are: for tests, and what remote zoom asks for. */
  state() {
    const page = this.pageSize();
    const view = this.viewport.getBoundingClientRect();
    const { ox, oy, drawn } = this.layout();
    const d = drawn || { w: view.width, h: view.height };
    const left = view.left + (drawn ? ox : 0);
    const top = view.top + (drawn ? oy : 0);
    return {
      scale: this.scale,
      page: { width: page.w, height: page.h,
              orientation: page.w >= page.h ? "landscape" : "portrait" },
      // The page as drawn on the screen, clipped to the view.
      shown: {
        left: Math.max(view.left, left),
        top: Math.max(view.top, top),
        right: Math.min(view.right, left + d.w),
        bottom: Math.min(view.bottom, top + d.h),
      },
      view: { left: view.left, top: view.top, right: view.right, bottom: view.bottom },
      region: this.region(), // the part of the page in view (null: all of it)
      frame: this.frameRect, // the part of the page the frame on screen shows (null: all)
    };
  }

  zoom(factor) {
    this.setZoom(this.scale * factor);
  }

  setZoom(scale) {
    this.scale = Math.min(MAX_ZOOM, Math.max(1, scale));
    this.apply();
  }

  /** Move the picture by (dx, dy) screen pixels (as a drag does). */
  panBy(dx, dy) {
    const { drawn } = this.layout();
    if (!drawn) return;
    this.cx -= dx / drawn.w;
    this.cy -= dy / drawn.h;
    this.apply();
  }

  reset() {
    this.scale = 1;
    this.cx = 0.5;
    this.cy = 0.5;
    this.apply();
  }

  /** The page's size on screen at this zoom, where its corner is, and the view's size. */
  layout() {
    const vw = this.viewport.clientWidth;
    const vh = this.viewport.clientHeight;
    if (!vw || !vh || !this.video.videoWidth) return { vw, vh, drawn: null };
    const page = this.pageSize();
    const fit = Math.min(vw / page.w, vh / page.h) * this.scale;
    const drawn = { w: page.w * fit, h: page.h * fit };
    return { vw, vh, drawn, ox: vw / 2 - this.cx * drawn.w, oy: vh / 2 - this.cy * drawn.h };
  }

  /** The part of the page in view, {x, y, w, h} in 0..1 (rounded), or null at 100 %. */
  region() {
    const { vw, vh, drawn, ox, oy } = this.layout();
    if (!drawn || this.scale <= 1.001) return null;
    const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
    const x0 = round(-ox / drawn.w);
    const x1 = round((vw - ox) / drawn.w);
    const y0 = round(-oy / drawn.h);
    const y1 = round((vh - oy) / drawn.h);
    if (x1 - x0 >= 0.9999 && y1 - y0 >= 0.9999) return null;
    return { x: x0, y: y0, w: Math.round((x1 - x0) * 10000) / 10000,
             h: Math.round((y1 - y0) * 10000) / 10000 };
  }

  /** Remote zoom: send the region in view, at most every REGION_MS, the last one always. */
  sendRegion(now = false) {
    if (!this.send || !this.timer) return;
    const region = this.region();
    const key = JSON.stringify(region);
    if (key === this.sentKey) return;
    const wait = this.sentAt + REGION_MS - performance.now();
    if (!now && wait > 0) {
      if (!this.pending) {
        this.pending = setTimeout(() => { this.pending = null; this.sendRegion(); }, wait);
      }
      return;
    }
    this.sentKey = key;
    this.sentAt = performance.now();
    this.zoomLog.push({ region, sentAt: this.sentAt, detailAt: null });
    if (this.zoomLog.length > 50) this.zoomLog.shift();
    Promise.resolve(this.send(region)).catch((error) => {
      // No camera in the call, the call ended: the local magnification stays.
      console.debug("remote zoom not sent", error);
      this.sentKey = "";
    });
  }

  apply() {
    const { vw, vh, drawn } = this.layout();
    if (drawn) {
      // Keep the page in view: centred when smaller than the view, edge to edge when larger.
      const halfX = Math.min(0.5, vw / 2 / drawn.w);
      const halfY = Math.min(0.5, vh / 2 / drawn.h);
      this.cx = drawn.w <= vw ? 0.5 : Math.min(1 - halfX, Math.max(halfX, this.cx));
      this.cy = drawn.h <= vh ? 0.5 : Math.min(1 - halfY, Math.max(halfY, this.cy));
    }
    this.render();
    const detail = Boolean(this.frameRect);
    if (this.output) {
      this.output.textContent = `${Math.round(this.scale * 100)} %`;
      this.output.classList.toggle("detail", detail);
      this.output.title = detail ? t("console.call.zoomDetail") : "";
    }
    this.viewport.dataset.zoom = String(Math.round(this.scale * 100));
    this.viewport.dataset.detail = detail ? "camera" : "";
    for (const fn of this.listeners) fn(this);
    this.sendRegion();
  }

  /** Draw the current frame (and, under a region frame, the last whole page) at its place. */
  render() {
    const screen = this.screen;
    const ratio = window.devicePixelRatio || 1;
    const { vw, vh, drawn, ox, oy } = this.layout();
    const width = Math.max(1, Math.round((vw || 1) * ratio));
    const height = Math.max(1, Math.round((vh || 1) * ratio));
    if (screen.width !== width || screen.height !== height) {
      screen.width = width;
      screen.height = height;
    }
    const g = screen.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    if (!drawn || !this.viewport.classList.contains("has-video")) {
      g.clearRect(0, 0, width, height);
      return;
    }
    g.fillStyle = "#000";
    g.fillRect(0, 0, width, height);
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.imageSmoothingQuality = "high";
    // page units → view pixels
    const at = (r) => [ox + r.x * drawn.w, oy + r.y * drawn.h, r.w * drawn.w, r.h * drawn.h];
    const v = this.video;
    const rect = this.frameRect;
    try {
      if (rect) {
        if (this.hasBackdrop) g.drawImage(this.backdrop, ...at({ x: 0, y: 0, w: 1, h: 1 }));
        g.drawImage(v, 0, 0, v.videoWidth, v.videoHeight - MARKER_HEIGHT, ...at(rect));
      } else {
        const box = this.pageBox();
        g.drawImage(v, box.x, box.y, box.w, box.h, ...at({ x: 0, y: 0, w: 1, h: 1 }));
      }
    } catch {
      // no frame decoded yet
    }
  }
}

/** Does the frame's page rectangle answer `region` (cover it, one side exactly)? */
function covers(rect, region) {
  const slack = 2e-4;
  const inside = rect.x <= region.x + slack && rect.y <= region.y + slack
    && rect.x + rect.w >= region.x + region.w - slack
    && rect.y + rect.h >= region.y + region.h - slack;
  const snug = Math.abs(rect.w - region.w) < 1e-3 || Math.abs(rect.h - region.h) < 1e-3;
  return inside && snug;
}
