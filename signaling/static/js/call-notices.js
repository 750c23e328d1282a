// What a video tile of a call says when the picture is not live, instead of a frozen frame.
// Shared by the kiosk and the consoles; the texts are in i18n.js (`common.notice.*`).
//
// In order of precedence:
//   "connection-lost"  our own socket or peer connection is down: "Yhteys katkesi — yhdistetään
//                      uudelleen…" (we cannot know anything about the others meanwhile);
//   "participant-left" the server says the participant lost his relay session
//                      (`call:participants`: connected false with `gone_reason` or
//                      `disconnected_at`): "Asiantuntija … poistui puhelusta. Odotetaan hetki…";
//   "media-lost"       his media stopped arriving (CallMedia's "stalled"): "Yhteys
//                      asiantuntijaan katkesi — yhdistetään uudelleen…".
//
//   renderTileNotice(tile, tileNotice({ selfDown, participant, role, media }));
//
// Every change is also recorded in window.__etapalvelu.notices ({tile, kind, at}) for tests.

import { t } from "./i18n.js";

const ROLES = ["expert", "customer", "interpreter"];

/** The participant's relay session is gone and he has not (yet) come back. */
export function participantGone(participant) {
  return Boolean(participant && participant.connected === false && !participant.left &&
                 (participant.gone_reason || participant.disconnected_at));
}

/**
 * The notice for a tile, or null.
 *   selfDown: our socket or media link is down;
 *   participant: the call participant shown in the tile (may be undefined);
 *   role: "expert" | "customer" | "interpreter" — whose tile it is;
 *   media: CallMedia.remoteMedia(participant_id): "waiting" | "flowing" | "stalled" | null.
 */
export function tileNotice({ selfDown = false, participant = null, role, media = null }) {
  const who = ROLES.includes(role) ? role : "expert";
  if (selfDown) return { kind: "connection-lost", text: t("common.notice.selfLost") };
  if (participantGone(participant)) {
    return { kind: "participant-left",
             text: t(`common.notice.left.${who}`, { name: participant.name || "" }) };
  }
  if (participant && participant.left) return null;
  if (media === "stalled") return { kind: "media-lost", text: t(`common.notice.lost.${who}`) };
  return null;
}

function noticeBox(tile) {
  let box = tile.querySelector(":scope > .tile-notice");
  if (!box) {
    box = document.createElement("div");
    box.className = "tile-notice";
    box.hidden = true;
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    const text = document.createElement("p");
    text.className = "tile-notice-text";
    box.append(text);
    tile.append(box);
  }
  return box;
}

/** Show `notice` ({kind, text}) over the tile, or clear it (null). */
export function renderTileNotice(tile, notice) {
  if (!tile) return;
  const box = noticeBox(tile);
  const kind = notice ? notice.kind : "";
  const text = notice ? notice.text : "";
  const p = box.querySelector(".tile-notice-text");
  // Only real changes: a screen reader announces each one.
  if (p.textContent !== text) p.textContent = text;
  if (box.dataset.notice !== kind) {
    box.dataset.notice = kind;
    window.__etapalvelu = window.__etapalvelu || {};
    const log = (window.__etapalvelu.notices = window.__etapalvelu.notices || []);
    log.push({ tile: tile.id || tile.dataset.role || "", kind, at: performance.now() });
    if (log.length > 200) log.splice(0, log.length - 200);
  }
  box.hidden = !notice;
  tile.classList.toggle("has-notice", Boolean(notice));
}
