// Queue length per line (authority × language) over the last half hour, as a small line
// (inline SVG) next to the line's name and its length now. Built only from the queue
// updates the console already receives (flow:sync, queue:update); kept in the page, so a
// reload starts the lines afresh. The picture has a text alternative: the length now, the
// half hour's longest and its shortest.

import { languageName, t } from "/static/common/js/i18n.js";
import { el } from "/static/common/js/dom.js";

export const WINDOW_MS = 30 * 60 * 1000;
const WIDTH = 120;
const HEIGHT = 28;
const SVG = "http://www.w3.org/2000/svg";

export class QueueTrends {
  constructor(list) {
    this.list = list;
    this.lines = new Map(); // "authorityId|language" -> {authorityId, language, points: [[ms, n]]}
  }

  record(authorityId, language, length, now = Date.now()) {
    const key = `${authorityId}|${language}`;
    let line = this.lines.get(key);
    if (!line) {
      line = { authorityId, language, points: [] };
      this.lines.set(key, line);
    }
    const last = line.points[line.points.length - 1];
    // A step: the old length up to now, then the new one (a queue changes in jumps).
    if (last && last[1] !== length) line.points.push([now, last[1]]);
    if (!last || last[1] !== length || now - last[0] >= 1000) line.points.push([now, length]);
    const since = now - WINDOW_MS;
    while (line.points.length > 2 && line.points[1][0] < since) line.points.shift();
  }

  /** Lines of `authorityId` (or every line, when null) that a push did not list: empty now. */
  emptyOthers(authorityId, seen, now = Date.now()) {
    for (const [key, line] of this.lines) {
      if (seen.has(key)) continue;
      if (authorityId != null && line.authorityId !== authorityId) continue;
      this.record(line.authorityId, line.language, 0, now);
    }
  }

  /** The lines worth showing: any customer in them during the half hour. */
  visible(now = Date.now()) {
    const since = now - WINDOW_MS;
    return [...this.lines.values()]
      .filter((line) => line.points.some(([at, n]) => n > 0 && at >= since)
        || line.points[line.points.length - 1][1] > 0)
      .sort((a, b) => a.authorityId - b.authorityId || a.language.localeCompare(b.language));
  }

  render(authorityName, now = Date.now()) {
    if (!this.list) return;
    this.list.replaceChildren();
    const lines = this.visible(now);
    if (!lines.length) {
      this.list.append(el("li", { class: "empty", text: t("console.trends.none") }));
      return;
    }
    for (const line of lines) {
      const counts = line.points.map(([, n]) => n);
      const current = counts[counts.length - 1];
      const name = t("console.trends.line", {
        authority: authorityName(line.authorityId), language: languageName(line.language) });
      const summary = t("console.trends.summary", {
        name, now: current, max: Math.max(...counts), min: Math.min(...counts) });
      this.list.append(el("li", {
        "data-line": `${line.authorityId}|${line.language}`, "data-now": String(current) },
        el("span", { class: "trend-name", text: name }),
        sparkline(line.points, now, summary),
        el("span", { class: "trend-now", "aria-hidden": "true", text: String(current) })));
    }
  }
}

function sparkline(points, now, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(WIDTH));
  svg.setAttribute("height", String(HEIGHT));
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.append(title);
  const max = Math.max(1, ...points.map(([, n]) => n));
  const since = now - WINDOW_MS;
  const x = (at) => ((Math.max(at, since) - since) / WINDOW_MS) * (WIDTH - 5) + 1;
  const y = (n) => HEIGHT - 2 - (n / max) * (HEIGHT - 4);
  const coords = points.map(([at, n]) => `${x(at).toFixed(1)},${y(n).toFixed(1)}`);
  // The last length carries on to now.
  coords.push(`${x(now).toFixed(1)},${y(points[points.length - 1][1]).toFixed(1)}`);
  const base = document.createElementNS(SVG, "line");
  for (const [k, v] of [["x1", 1], ["x2", WIDTH - 1], ["y1", HEIGHT - 2], ["y2", HEIGHT - 2]]) {
    base.setAttribute(k, String(v));
  }
  base.setAttribute("stroke", "#767676");
  base.setAttribute("stroke-width", "1");
  const path = document.createElementNS(SVG, "polyline");
  path.setAttribute("points", coords.join(" "));
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "#003580");
  path.setAttribute("stroke-width", "2");
  // The length now as a dot at the line's end (a line just seen has no history yet).
  const dot = document.createElementNS(SVG, "circle");
  dot.setAttribute("cx", x(now).toFixed(1));
  dot.setAttribute("cy", y(points[points.length - 1][1]).toFixed(1));
  dot.setAttribute("r", "2.5");
  dot.setAttribute("fill", "#003580");
  svg.append(base, path, dot);
  return svg;
}
