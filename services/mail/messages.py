"""The few texts of the mail the box writes itself (delivery status notices), in the box's default
language (system.language). The mail service does not import the web admin, so its own small table."""
from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "mailer": "Mail Delivery System",
        "bounce_subject": "Undelivered Mail Returned to Sender",
        "bounce_intro": "Your message could not be delivered to these recipients:",
    },
    "fr": {
        "mailer": "Système de distribution du courrier",
        "bounce_subject": "Message non distribué renvoyé à l'expéditeur",
        "bounce_intro": "Votre message n'a pas pu être distribué à ces destinataires :",
    },
    "zh_TW": {
        "mailer": "郵件傳遞系統",
        "bounce_subject": "無法投遞的郵件已退回寄件者",
        "bounce_intro": "您的郵件無法投遞給下列收件者：",
    },
}
assert all(set(texts) == set(MESSAGES["en"]) for texts in MESSAGES.values())


def text(language: str, key: str) -> str:
    """`key` in `language`, English for a language without a table."""
    return MESSAGES.get(language, MESSAGES["en"])[key]
