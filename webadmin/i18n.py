"""Languages of the web admin (Flask-Babel): the signed-in user's language, else the browser's
Accept-Language, else the box default (system.language, chosen in the wizard); the box's time zone.

Catalogues: webadmin/translations/<locale>/LC_MESSAGES/messages.po (the sources; Babel files zh_TW under
zh_Hant_TW) and the compiled .mo beside them, both committed, so a clone, `make setup` and the firmware
need no build step. `make translations` extracts the marked text, merges it into each .po and compiles;
tests/webadmin/test_i18n.py fails while a message lacks a translation or a .mo is older than its .po.
Mark text with `_()` (templates, views), and with `N_()` where it is shown later (navigation entries,
tables of messages), translated where shown.
"""
from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

from flask import Flask, request
from flask_babel import Babel, format_datetime, format_time, get_locale, gettext

from appliance.users import LANGUAGES
from webadmin import core
from webadmin.core import N_

# each language by its own name, as a chooser shows it
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "zh_TW": "繁體中文（台灣）"}
# Accept-Language tags (lower case, primary subtag first) -> our locales; the first match wins
BROWSER_TAGS = (("zh-tw", "zh_TW"), ("zh-hant", "zh_TW"), ("zh-hk", "zh_TW"), ("zh-mo", "zh_TW"),
                ("fr", "fr"), ("en", "en"))
assert set(LANGUAGE_NAMES) == set(LANGUAGES)
__all__ = ["N_", "init_app", "language_choices", "browser_language", "format_when", "select_locale"]


def language_choices() -> list[tuple[str, str]]:
    return list(LANGUAGE_NAMES.items())


def browser_language() -> str | None:
    """The best of our languages in the request's Accept-Language, in the browser's order of preference."""
    for tag, _quality in request.accept_languages:
        tag = tag.lower().replace("_", "-")
        for prefix, locale in BROWSER_TAGS:
            if tag == prefix or tag.startswith(prefix + "-"):
                return locale
    return None


def select_locale() -> str:
    user = core.current_user()
    if user is not None:
        return user.language
    return browser_language() or core.current_config().system.language


def select_timezone() -> str:
    name = core.current_config().system.timezone
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def format_when(timestamp: float | None) -> str:
    """Jinja filter `when`: a UNIX time as date and time in the user's locale and the box's time zone."""
    if timestamp is None:
        return ""
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), "medium")


def format_clock(timestamp: float | None) -> str:
    """Jinja filter `clock`: a UNIX time as the time of day in the user's locale and the box's time zone."""
    if timestamp is None:
        return ""
    return format_time(datetime.fromtimestamp(timestamp, UTC), "medium")


def translated(options: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Jinja filter: a choice list of the code's own (N_-marked) labels, translated."""
    return [(value, gettext(label)) for value, label in options]


def html_lang() -> str:
    """The page's lang attribute (BCP 47: zh-TW)."""
    locale = get_locale()
    return "-".join(filter(None, (locale.language, locale.territory))) if locale else "en"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.filters.update(when=format_when, clock=format_clock, translated=translated)
    app.jinja_env.globals.update(html_lang=html_lang, box_timezone=select_timezone)
