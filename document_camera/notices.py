"""What the clerk is told about the document camera, in Finnish, Swedish and English.

Each notice has a stable code (for the UI and the logs) and its texts; nothing here raises:
a camera problem is something to tell the clerk, and the call goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NoticeCode(StrEnum):
    NO_PAGE = "no_page"
    OUT_OF_FOCUS = "out_of_focus"
    MOTION_BLUR = "motion_blur"
    SHADOW_ON_PAGE = "shadow_on_page"
    PAGE_UNCERTAIN = "page_uncertain"
    CAMERA_LOST = "camera_lost"
    CAMERA_BACK = "camera_back"
    NOT_AN_IMAGE = "not_an_image"
    TILES_DO_NOT_OVERLAP = "tiles_do_not_overlap"
    STITCH_REJECTED = "stitch_rejected"
    TILES_TOO_PLAIN = "tiles_too_plain"
    STILL_TAKEN = "still_taken"
    CAMERA_TOO_COARSE = "camera_too_coarse"  # document_camera/guidance.py


_TEXTS: dict[NoticeCode, dict[str, str]] = {
    NoticeCode.NO_PAGE: {
        "fi": "Asiakirjaa ei löydy kuvasta. Aseta paperi kokonaan kameran alle.",
        "sv": "Inget dokument syns i bilden. Lägg pappret helt under kameran.",
        "en": "No document in view. Place the whole page under the camera.",
    },
    NoticeCode.OUT_OF_FOCUS: {
        "fi": "Kuva on epätarkka. Tarkenna kamera tai pidä paperi paikallaan.",
        "sv": "Bilden är oskarp. Ställ in skärpan eller håll pappret stilla.",
        "en": "The image is out of focus. Refocus the camera or hold the page still.",
    },
    NoticeCode.MOTION_BLUR: {
        "fi": "Kuva on liikkeen sumentama. Pidä paperi ja kamera hetki paikallaan.",
        "sv": "Bilden är suddig av rörelse. Håll pappret och kameran stilla en stund.",
        "en": "The image is blurred by movement. Hold the page and the camera still.",
    },
    NoticeCode.SHADOW_ON_PAGE: {
        "fi": "Varjo sivun päällä. Siirrä kättä, päätä tai valaisinta niin, ettei varjo osu "
              "paperiin.",
        "sv": "Skugga över sidan. Flytta handen, huvudet eller lampan så att skuggan inte "
              "faller på pappret.",
        "en": "Shadow on the page. Move your arm, head or the lamp so that no shadow falls on "
              "the paper.",
    },
    NoticeCode.PAGE_UNCERTAIN: {
        "fi": "Paperin reunat eivät erotu varmasti, joten asiantuntija näkee koko kamerakuvan. "
              "Aseta paperi kokonaan näkyviin tummalle alustalle.",
        "sv": "Pappersarkets kanter syns inte säkert, så experten ser hela kamerabilden. "
              "Lägg pappret helt synligt på ett mörkt underlag.",
        "en": "The page's edges are not clear, so the expert sees the whole camera view. "
              "Place the whole page in view on a dark surface.",
    },
    NoticeCode.CAMERA_LOST: {
        "fi": "Dokumenttikamera ei vastaa. Tarkista kameran johto; puhelu jatkuu.",
        "sv": "Dokumentkameran svarar inte. Kontrollera kabeln; samtalet fortsätter.",
        "en": "The document camera stopped responding. Check its cable; the call goes on.",
    },
    NoticeCode.CAMERA_BACK: {
        "fi": "Dokumenttikamera toimii taas.",
        "sv": "Dokumentkameran fungerar igen.",
        "en": "The document camera is working again.",
    },
    NoticeCode.NOT_AN_IMAGE: {
        "fi": "Tiedosto ei ole kuva eikä video.",
        "sv": "Filen är varken en bild eller en video.",
        "en": "The file is neither an image nor a video.",
    },
    NoticeCode.TILES_DO_NOT_OVERLAP: {
        "fi": "Osakuvat eivät limity. Ota kuvat niin, että vierekkäiset menevät osin päällekkäin.",
        "sv": "Delbilderna överlappar inte. Ta bilderna så att intilliggande delvis överlappar.",
        "en": "The tiles do not overlap. Take them so that neighbouring tiles partly overlap.",
    },
    NoticeCode.STITCH_REJECTED: {
        "fi": "Osakuvien yhdistäminen epäonnistui. Kuvaa arkki uudelleen.",
        "sv": "Delbilderna kunde inte sammanfogas. Fotografera arket på nytt.",
        "en": "The tiles could not be joined reliably. Please capture the sheet again.",
    },
    NoticeCode.TILES_TOO_PLAIN: {
        "fi": "Osakuvissa on liian vähän piirrosta kohdistamiseen. Ota kuvat niin, että "
              "limittyvällä alueella on viivoja tai tekstiä.",
        "sv": "Delbilderna har för lite innehåll för att passas ihop. Ta bilderna så att det "
              "överlappande området har linjer eller text.",
        "en": "The tiles show too little drawing to be aligned. Take them so that the "
              "overlapping parts show lines or text.",
    },
    NoticeCode.CAMERA_TOO_COARSE: {
        "fi": "Dokumenttikameran tarkkuus ei riitä tämän toimipisteen asiakirjoihin: "
              "asiantuntija ei saa pienestä tekstistä tai piirustusten mitoista selvää. "
              "Vaihda tarkempi kamera tai lähetä asiakirja tiedostona.",
        "sv": "Dokumentkamerans upplösning räcker inte för det här kontorets dokument: "
              "experten kan inte läsa liten text eller ritningarnas mått. "
              "Byt till en skarpare kamera eller skicka dokumentet som fil.",
        "en": "The document camera's resolution is too low for this office's documents: "
              "the expert cannot read small print or the dimensions of drawings. "
              "Use a sharper camera or send the document as a file.",
    },
    NoticeCode.STILL_TAKEN: {
        "fi": "Tarkka kuva otettu.",
        "sv": "En skarp bild har tagits.",
        "en": "A full-resolution still was taken.",
    },
}


@dataclass(frozen=True)
class Notice:
    code: NoticeCode
    detail: str = ""  # technical detail for logs, in English

    def text(self, language: str = "fi") -> str:
        texts = _TEXTS[self.code]
        return texts.get(language, texts["en"])

    def to_dict(self) -> dict[str, object]:
        return {"code": str(self.code), "detail": self.detail, "text": dict(_TEXTS[self.code])}
