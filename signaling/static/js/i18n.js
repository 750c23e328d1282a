// Finnish, Swedish and English for every page, switchable at run time.
//
// Pages mark translatable text in HTML with attributes, and JS asks `t(key, vars)`:
//   <h1 data-i18n="kiosk.welcome"></h1>
//   <button data-i18n-attr="aria-label:console.logout"></button>
// Each page registers its own strings with `addStrings({fi: {...}, sv: {...}, en: {...}})`;
// the common ones live here. `missingKeys()` lets the tests check that every language has
// every key, so a forgotten translation fails a test instead of showing a raw key.

export const LANGUAGES = ["fi", "sv", "en"];
export const LANGUAGE_NAMES = { fi: "Suomi", sv: "Svenska", en: "English" };

const STRINGS = { fi: {}, sv: {}, en: {} };

const COMMON = {
  fi: {
    "common.language": "Kieli",
    "common.languageSwitcher": "Vaihda kieli",
    "common.skipToContent": "Siirry sisältöön",
    "common.back": "Takaisin",
    "common.cancel": "Peruuta",
    "common.close": "Sulje",
    "common.save": "Tallenna",
    "common.submit": "Lähetä",
    "common.loading": "Ladataan…",
    "common.error": "Virhe: {message}",
    "common.reconnecting": "Yhteys katkesi. Yhdistetään uudelleen…",
    "common.connected": "Yhteys kunnossa",
    "common.minutes": "{n} min",
    "common.aboutMinutes": "noin {n} minuuttia",
    "common.lessThanMinute": "alle minuutti",
    "common.quality": "Yhteyden laatu",
    "common.quality.good": "Hyvä yhteys",
    "common.quality.fair": "Kohtalainen yhteys",
    "common.quality.poor": "Heikko yhteys",
    "common.quality.unknown": "Yhdistetään…",
    "common.video.customer": "Asiakas",
    "common.video.expert": "Asiantuntija",
    "common.video.interpreter": "Tulkki",
    "common.video.self": "Oma kuva",
    "common.video.document": "Asiakirjakamera",
    "common.participants": "Puhelussa mukana",
    "common.participants.you": "sinä",
    "common.participants.offline": "ei yhteyttä",
    "common.participants.left": "poistui",
    "common.notice.selfLost": "Yhteys katkesi — yhdistetään uudelleen…",
    "common.notice.lost.expert": "Yhteys asiantuntijaan katkesi — yhdistetään uudelleen…",
    "common.notice.lost.customer": "Yhteys asiakkaaseen katkesi — yhdistetään uudelleen…",
    "common.notice.lost.interpreter": "Yhteys tulkkiin katkesi — yhdistetään uudelleen…",
    "common.notice.left.expert": "Asiantuntija {name} poistui puhelusta. Odotetaan hetki…",
    "common.notice.left.customer": "Asiakas poistui puhelusta. Odotetaan hetki…",
    "common.notice.left.interpreter": "Tulkki {name} poistui puhelusta. Odotetaan hetki…",
    "lang.fin": "suomi",
    "lang.swe": "ruotsi",
    "lang.eng": "englanti",
    "lang.fse": "suomalainen viittomakieli",
    "lang.fss": "suomenruotsalainen viittomakieli",
    "lang.rus": "venäjä",
    "lang.ara": "arabia",
    "lang.som": "somali",
    "lang.est": "viro",
    "lang.ukr": "ukraina",
    "lang.fas": "persia",
    "lang.smi": "saame",
    "lang.sme": "pohjoissaame",
  },
  sv: {
    "common.language": "Språk",
    "common.languageSwitcher": "Byt språk",
    "common.skipToContent": "Hoppa till innehållet",
    "common.back": "Tillbaka",
    "common.cancel": "Avbryt",
    "common.close": "Stäng",
    "common.save": "Spara",
    "common.submit": "Skicka",
    "common.loading": "Laddar…",
    "common.error": "Fel: {message}",
    "common.reconnecting": "Anslutningen bröts. Ansluter igen…",
    "common.connected": "Anslutningen fungerar",
    "common.minutes": "{n} min",
    "common.aboutMinutes": "cirka {n} minuter",
    "common.lessThanMinute": "under en minut",
    "common.quality": "Anslutningens kvalitet",
    "common.quality.good": "Bra anslutning",
    "common.quality.fair": "Hygglig anslutning",
    "common.quality.poor": "Svag anslutning",
    "common.quality.unknown": "Ansluter…",
    "common.video.customer": "Kund",
    "common.video.expert": "Sakkunnig",
    "common.video.interpreter": "Tolk",
    "common.video.self": "Egen bild",
    "common.video.document": "Dokumentkamera",
    "common.participants": "Med i samtalet",
    "common.participants.you": "du",
    "common.participants.offline": "ingen anslutning",
    "common.participants.left": "har lämnat",
    "common.notice.selfLost": "Anslutningen bröts — ansluter igen…",
    "common.notice.lost.expert": "Anslutningen till experten bröts — ansluter igen…",
    "common.notice.lost.customer": "Anslutningen till kunden bröts — ansluter igen…",
    "common.notice.lost.interpreter": "Anslutningen till tolken bröts — ansluter igen…",
    "common.notice.left.expert": "Experten {name} lämnade samtalet. Vi väntar en stund…",
    "common.notice.left.customer": "Kunden lämnade samtalet. Vi väntar en stund…",
    "common.notice.left.interpreter": "Tolken {name} lämnade samtalet. Vi väntar en stund…",
    "lang.fin": "finska",
    "lang.swe": "svenska",
    "lang.eng": "engelska",
    "lang.fse": "finskt teckenspråk",
    "lang.fss": "finlandssvenskt teckenspråk",
    "lang.rus": "ryska",
    "lang.ara": "arabiska",
    "lang.som": "somaliska",
    "lang.est": "estniska",
    "lang.ukr": "ukrainska",
    "lang.fas": "persiska",
    "lang.smi": "samiska",
    "lang.sme": "nordsamiska",
  },
  en: {
    "common.language": "Language",
    "common.languageSwitcher": "Change language",
    "common.skipToContent": "Skip to content",
    "common.back": "Back",
    "common.cancel": "Cancel",
    "common.close": "Close",
    "common.save": "Save",
    "common.submit": "Submit",
    "common.loading": "Loading…",
    "common.error": "Error: {message}",
    "common.reconnecting": "The connection was lost. Reconnecting…",
    "common.connected": "Connected",
    "common.minutes": "{n} min",
    "common.aboutMinutes": "about {n} minutes",
    "common.lessThanMinute": "less than a minute",
    "common.quality": "Connection quality",
    "common.quality.good": "Good connection",
    "common.quality.fair": "Fair connection",
    "common.quality.poor": "Weak connection",
    "common.quality.unknown": "Connecting…",
    "common.video.customer": "Customer",
    "common.video.expert": "Expert",
    "common.video.interpreter": "Interpreter",
    "common.video.self": "You",
    "common.video.document": "Document camera",
    "common.participants": "In the call",
    "common.participants.you": "you",
    "common.participants.offline": "not connected",
    "common.participants.left": "left",
    "common.notice.selfLost": "Connection lost — reconnecting…",
    "common.notice.lost.expert": "Connection to the expert lost — reconnecting…",
    "common.notice.lost.customer": "Connection to the customer lost — reconnecting…",
    "common.notice.lost.interpreter": "Connection to the interpreter lost — reconnecting…",
    "common.notice.left.expert": "The expert {name} left the call. Please wait a moment…",
    "common.notice.left.customer": "The customer left the call. Waiting a moment…",
    "common.notice.left.interpreter": "The interpreter {name} left the call. Please wait a moment…",
    "lang.fin": "Finnish",
    "lang.swe": "Swedish",
    "lang.eng": "English",
    "lang.fse": "Finnish Sign Language",
    "lang.fss": "Finland-Swedish Sign Language",
    "lang.rus": "Russian",
    "lang.ara": "Arabic",
    "lang.som": "Somali",
    "lang.est": "Estonian",
    "lang.ukr": "Ukrainian",
    "lang.fas": "Persian",
    "lang.smi": "Sami",
    "lang.sme": "Northern Sami",
  },
};

let current = "fi";
const listeners = new Set();

export function addStrings(table) {
  for (const lang of LANGUAGES) Object.assign(STRINGS[lang], table[lang] || {});
}
addStrings(COMMON);

export function language() {
  return current;
}

/** Translate `key`, filling `{name}` placeholders from `vars`. Unknown keys show as the key. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Name of a language of service (ISO 639-3 code), in the UI language. */
export function languageName(code) {
  const key = `lang.${code}`;
  return key in STRINGS[current] ? t(key) : code;
}

/** Pick the UI-language variant of a server object's name: {name: {fi, sv, en}},
 * {names: {fi, sv, en}} or {name_fi, name_sv, name_en}; falls back to Finnish. */
export function localName(obj) {
  if (!obj) return "";
  const names = typeof obj.name === "object" && obj.name ? obj.name : obj.names || {};
  return (
    names[current] || obj[`name_${current}`] || names.fi || obj.name_fi ||
    (typeof obj.name === "string" ? obj.name : "") || obj.code || ""
  );
}

export function applyTranslations(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

export function setLanguage(lang, { remember = true } = {}) {
  if (!LANGUAGES.includes(lang)) return;
  current = lang;
  document.documentElement.lang = lang;
  if (remember) {
    try {
      localStorage.setItem("etapalvelu.language", lang);
    } catch {
      /* private mode: the choice just is not remembered */
    }
  }
  applyTranslations(document);
  for (const fn of listeners) fn(lang);
}

/** The language the user picked earlier on this device, if any. */
export function rememberedLanguage() {
  try {
    const lang = localStorage.getItem("etapalvelu.language");
    return LANGUAGES.includes(lang) ? lang : null;
  } catch {
    return null;
  }
}

export function onLanguageChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Every key that some language lacks, as "lang:key" (empty when the tables are complete). */
export function missingKeys() {
  const all = new Set(LANGUAGES.flatMap((l) => Object.keys(STRINGS[l])));
  const missing = [];
  for (const lang of LANGUAGES) {
    for (const key of all) if (!(key in STRINGS[lang])) missing.push(`${lang}:${key}`);
  }
  return missing;
}

/** Buttons "Suomi / Svenska / English" in `container`; the current one is aria-pressed.
 * `remember: false` for shared devices (the kiosk), where one person's choice is not the next's. */
export function mountLanguageSwitcher(container, { remember = true } = {}) {
  container.setAttribute("role", "group");
  container.setAttribute("data-i18n-attr", "aria-label:common.languageSwitcher");
  container.classList.add("lang-switcher");
  container.replaceChildren();
  for (const lang of LANGUAGES) {
    const button = document.createElement("button");
    button.type = "button";
    button.lang = lang;
    button.textContent = LANGUAGE_NAMES[lang];
    button.dataset.lang = lang;
    button.addEventListener("click", () => setLanguage(lang, { remember }));
    container.append(button);
  }
  const mark = () => {
    for (const b of container.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === current));
    }
  };
  onLanguageChange(mark);
  mark();
}

/** Minutes (rounded up) as plain words: "about 5 minutes" / "less than a minute". */
export function waitText(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "–";
  if (seconds < 60) return t("common.lessThanMinute");
  return t("common.aboutMinutes", { n: Math.ceil(seconds / 60) });
}

/** Elapsed time as m:ss or h:mm:ss, for queue tables. */
export function clockText(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

export function formatDateTime(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  const locale = { fi: "fi-FI", sv: "sv-FI", en: "en-GB" }[current];
  return date.toLocaleString(locale, { dateStyle: "short", timeStyle: "short" });
}
