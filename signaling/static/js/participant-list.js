// Everyone in the call, devices included, as a visible list: the customer at the kiosk and the
// expert (and an interpreter) always see who — and what — takes part, the office's document
// camera too. Fed with the `participants` of `call:started` / `call:participants`.
//
//   renderParticipantList(listElement, participants, { selfId });

import { t } from "./i18n.js";

const ROLE_KEYS = {
  customer: "common.video.customer",
  expert: "common.video.expert",
  interpreter: "common.video.interpreter",
  document_camera: "common.video.document",
};

const STYLE = `
.call-participants { list-style: none; display: flex; flex-wrap: wrap; gap: .3rem .9rem; margin: .3rem 0; padding: 0; }
.call-participants li[data-connected=false] { opacity: .7; }
`;

function installStyle() {
  if (document.getElementById("participant-list-style")) return;
  const style = document.createElement("style");
  style.id = "participant-list-style";
  style.textContent = STYLE;
  document.head.append(style);
}

/** One line per participant: role, name (a device shows its role only), connection. */
export function participantLine(participant, selfId = null) {
  const roleKey = ROLE_KEYS[participant.role];
  const role = roleKey ? t(roleKey) : participant.role;
  let line = participant.role === "document_camera" || !participant.name
    ? role : `${role}: ${participant.name}`;
  if (selfId && participant.participant_id === selfId) line += ` (${t("common.participants.you")})`;
  if (participant.left) line += ` — ${t("common.participants.left")}`;
  else if (!participant.connected) line += ` — ${t("common.participants.offline")}`;
  return line;
}

/** Fill the list element with the call's participants. */
export function renderParticipantList(list, participants, { selfId = null } = {}) {
  installStyle();
  list.classList.add("call-participants");
  list.setAttribute("aria-label", t("common.participants"));
  list.dataset.testid = "call-participants";
  const items = (participants || []).map((p) => {
    const item = document.createElement("li");
    item.dataset.participant = p.participant_id;
    item.dataset.role = p.role;
    item.dataset.connected = String(Boolean(p.connected));
    item.textContent = participantLine(p, selfId);
    return item;
  });
  list.replaceChildren(...items);
  return list;
}

/** The page's list element `id`, made (a <ul>) and put after `anchor` when missing. */
export function participantListElement(id, anchor) {
  let list = document.getElementById(id);
  if (!list && anchor) {
    list = document.createElement("ul");
    list.id = id;
    anchor.after(list);
  }
  return list;
}
