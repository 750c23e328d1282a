// The document camera's picture in a console: zoom (1×–8×) and pan that follow the page.
//
// The document track keeps one resolution whatever it shows (document_camera/track.py): a
// landscape plan arrives letterboxed with black bars inside a portrait frame. Fitting that
// frame into a landscape view would letterbox it a second time, so this view finds the page
// inside the frame (the part that is not the black bars, measured on a small copy of a frame
// every DETECT_MS) and fits *the page* to the view: a landscape plan fills a landscape view.
// Zoom and pan work on the page too: 100 % is the whole page in view, panning stops at its
// edges. Mouse or touch drag, the wheel, arrow keys, + / − / 0, and the buttons.
//
// Kept apart from the call panel so that remote zoom (asking the camera for a closer look)
// can be added here: `setZoom`, `panBy` and `state()` are the whole interface.

const DETECT_MS = 1500;
const SAMPLE_LONG_SIDE = 160; // pixels of the small copy the page is found on
const BAR_LUMA = 24; // a row or column darker than this on average is letterbox
const MAX_ZOOM = 8;

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
    this.box = null; // the page inside the frame, in frame pixels
    this.canvas = document.createElement("canvas");
    this.timer = null;
    this.listeners = new Set();
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
    video.addEventListener("loadedmetadata", () => { this.detect(); this.apply(); });
    video.addEventListener("resize", () => { this.detect(); this.apply(); });
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.apply()).observe(viewport);
    }
  }

  /** Start finding the page in the frames (while a document track is shown). */
  start() {
    if (this.timer) return;
    this.detect();
    this.timer = setInterval(() => this.detect(), DETECT_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.box = null;
    this.reset();
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Find the page inside the current frame; re-fit when it moved. */
  detect() {
    const v = this.video;
    const fw = v.videoWidth;
    const fh = v.videoHeight;
    if (!fw || !fh) return;
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
      this.apply();
    }
  }

  /** The page's box in frame pixels (the whole frame until one is found). */
  pageBox() {
    const fw = this.video.videoWidth || 1;
    const fh = this.video.videoHeight || 1;
    return this.box || { x: 0, y: 0, w: fw, h: fh };
  }

  /** Where things are: for tests and for the remote zoom to come. */
  state() {
    const box = this.pageBox();
    const view = this.viewport.getBoundingClientRect();
    const rect = this.video.getBoundingClientRect();
    const k = rect.width / (this.video.videoWidth || 1);
    return {
      scale: this.scale,
      page: { width: box.w, height: box.h,
              orientation: box.w >= box.h ? "landscape" : "portrait" },
      // The page as drawn on the screen, clipped to the view.
      shown: {
        left: Math.max(view.left, rect.left + box.x * k),
        top: Math.max(view.top, rect.top + box.y * k),
        right: Math.min(view.right, rect.left + (box.x + box.w) * k),
        bottom: Math.min(view.bottom, rect.top + (box.y + box.h) * k),
      },
      view: { left: view.left, top: view.top, right: view.right, bottom: view.bottom },
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

  /** The page's size on screen at this zoom, and the view's size. */
  layout() {
    const vw = this.viewport.clientWidth;
    const vh = this.viewport.clientHeight;
    if (!vw || !vh || !this.video.videoWidth) return { vw, vh, drawn: null };
    const box = this.pageBox();
    const fit = Math.min(vw / box.w, vh / box.h) * this.scale;
    return { vw, vh, fit, box, drawn: { w: box.w * fit, h: box.h * fit } };
  }

  apply() {
    const { vw, vh, fit, box, drawn } = this.layout();
    const video = this.video;
    if (!drawn) {
      video.style.width = "";
      video.style.height = "";
      video.style.transform = "";
    } else {
      // Keep the page in view: centred when smaller than the view, edge to edge when larger.
      const halfX = Math.min(0.5, vw / 2 / drawn.w);
      const halfY = Math.min(0.5, vh / 2 / drawn.h);
      this.cx = drawn.w <= vw ? 0.5 : Math.min(1 - halfX, Math.max(halfX, this.cx));
      this.cy = drawn.h <= vh ? 0.5 : Math.min(1 - halfY, Math.max(halfY, this.cy));
      // The whole frame is drawn at `fit`; its page point (cx, cy) lands on the view's centre.
      const x = vw / 2 - (box.x + this.cx * box.w) * fit;
      const y = vh / 2 - (box.y + this.cy * box.h) * fit;
      video.style.width = `${video.videoWidth * fit}px`;
      video.style.height = `${video.videoHeight * fit}px`;
      video.style.transform = `translate(${x}px, ${y}px)`;
    }
    if (this.output) this.output.textContent = `${Math.round(this.scale * 100)} %`;
    this.viewport.dataset.zoom = String(Math.round(this.scale * 100));
    for (const fn of this.listeners) fn(this);
  }
}
