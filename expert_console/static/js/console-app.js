// What every console page shares: language, log-in, the socket with `flow:sync` after each
// (re)connect, the availability buttons and status banners.

import {
  addStrings, applyTranslations, mountLanguageSwitcher, onLanguageChange, rememberedLanguage,
  setLanguage, t,
} from "/static/common/js/i18n.js";
import { connect, forgetSession, login, request, savedSession } from "./session.js";
import { CONSOLE_STRINGS } from "./strings.js";

addStrings(CONSOLE_STRINGS);

export const $ = (id) => document.getElementById(id);

export function setStatus(text, kind = "warn") {
  const el = $("status");
  if (!el) return;
  el.textContent = text || "";
  el.className = `banner ${kind}`;
  el.hidden = !text;
}

let noticeTimer = null;
/** A passing message (kept for 8 s: long enough to read, short enough not to pile up). */
export function notify(text, kind = "info", { tag = null } = {}) {
  const el = $("notice");
  if (!el) return;
  el.textContent = text;
  if (tag) el.dataset.tag = tag;
  else delete el.dataset.tag;
  el.className = `banner ${kind}`;
  el.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.hidden = true; }, 8000);
}

/** Take the passing message away now (e.g. "new request" once it has been answered); with
 * `tag`, only if the message shown was given that tag. */
export function clearNotice(tag = null) {
  const el = $("notice");
  if (!el || (tag && el.dataset.tag !== tag)) return;
  clearTimeout(noticeTimer);
  el.hidden = true;
  el.textContent = "";
  delete el.dataset.tag;
}

/** A translated text for a refused request, using the stable `reason` when there is one. */
export function errorText(error) {
  const key = `console.error.${error.reason || error.code}`;
  const text = t(key);
  return text === key ? t("console.error.generic", { message: error.message }) : text;
}

/**
 * Start a console page.
 *   roles: which user roles may use it; onSync(ack, ctx) after every flow:sync;
 *   onSession(ctx) once per login with ctx = {socket, user}.
 */
/** Shows the page section `#view-<name>`, hides the others, marks its navigation button. */
export function selectView(name) {
  for (const section of document.querySelectorAll(".view")) {
    section.hidden = section.id !== `view-${name}`;
  }
  for (const b of document.querySelectorAll(".console-nav [data-view]")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
}

export function startConsole({ roles, onSession, onSync }) {
  mountLanguageSwitcher($("language-switcher"));
  setLanguage(rememberedLanguage() || "fi");
  applyTranslations();
  const ctx = { socket: null, user: null };
  // The signed-in line follows the language like every other text.
  const renderSignedIn = () => {
    $("signed-in").textContent = ctx.user
      ? t("console.signedInAs", { name: ctx.user.display_name }) : "";
  };
  onLanguageChange(renderSignedIn);
  window.__etapalvelu = window.__etapalvelu || {};
  window.__etapalvelu.console = ctx;

  const showLogin = (message) => {
    $("app").hidden = true;
    $("login").hidden = false;
    $("logout").hidden = true;
    $("presence") && ($("presence").hidden = true);
    ctx.user = null;
    $("signed-in").textContent = "";
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("username").focus();
  };

  const begin = (session) => {
    if (!roles.includes(session.user.role)) {
      forgetSession();
      showLogin(t("console.login.wrongRole"));
      return;
    }
    ctx.user = session.user;
    document.body.dataset.role = session.user.role;
    for (const el of document.querySelectorAll("[data-role-only]")) {
      el.hidden = !el.dataset.roleOnly.split(" ").includes(session.user.role);
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    renderSignedIn();
    const socket = connect({ token: session.token });
    ctx.socket = socket;
    socket.on("connect", async () => {
      setStatus("");
      try {
        const ack = await request(socket, "flow:sync", {});
        await onSync(ack, ctx);
      } catch (error) {
        setStatus(errorText(error), "error");
      }
    });
    socket.on("connect_error", (error) => {
      if (error && /unauth|token|expired/i.test(error.message || "")) {
        socket.disconnect();
        forgetSession();
        showLogin(t("console.login.failed"));
        return;
      }
      setStatus(t("common.reconnecting"));
    });
    socket.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") setStatus(t("common.reconnecting"));
    });
    mountPresence(ctx, session.user);
    onSession(ctx);
  };

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const session = await login($("username").value.trim(), $("password").value);
      $("password").value = "";
      begin(session);
    } catch {
      showLogin(t("console.login.failed"));
    }
  });
  $("logout").addEventListener("click", async () => {
    const session = savedSession();
    if (session) {
      fetch("/api/logout", { method: "POST",
                             headers: { authorization: `Bearer ${session.token}` } })
        .catch(() => {});
    }
    forgetSession();
    if (ctx.socket) ctx.socket.disconnect();
    location.reload();
  });
  const session = savedSession();
  if (session) begin(session);
  else showLogin();
  return ctx;
}

function mountPresence(ctx, user) {
  const group = $("presence");
  if (!group) return;
  if (!["expert", "interpreter"].includes(user.role)) {
    group.hidden = true;
    return;
  }
  group.hidden = false;
  const mark = (status) => {
    for (const b of group.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.presence === status));
    }
  };
  // The login reply was written before this socket connected (then he was "offline"; the
  // connect makes him available unless he chose busy or away). So the mark comes from the
  // server after every (re)connect; `presence:get` also subscribes to `presence:changed`.
  mark(user.presence);
  ctx.setPresenceMark = mark;
  const readPresence = async () => {
    try {
      const snapshot = await request(ctx.socket, "presence:get", {});
      const me = (snapshot.users || []).find((u) => u.id === user.id);
      if (me) mark(me.status);
    } catch (error) {
      console.warn("presence:get failed", error);
    }
  };
  ctx.socket.on("connect", readPresence);
  if (ctx.socket.connected) readPresence();
  for (const button of group.querySelectorAll("button")) {
    button.onclick = async () => {
      try {
        await request(ctx.socket, "presence:set", { status: button.dataset.presence });
        mark(button.dataset.presence);
      } catch (error) {
        setStatus(errorText(error), "error");
      }
    };
  }
  ctx.socket.on("presence:changed", (entry) => {
    if (entry && entry.kind === "user" && entry.id === user.id) mark(entry.status);
  });
}
