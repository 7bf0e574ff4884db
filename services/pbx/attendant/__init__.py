"""Auto attendants, time profiles, dial by name and the personal assistant (issue 14).

  attendant:<name>     menu.py: a tree of menus (pbx.attendants), entry menu by time profile state
  app:dial-by-name     byname.py: keypad letters of a surname or first name, 1 to connect, 2 next
  assistant:<ext>      assistant.py: an unanswered call's choices (pbx.extensions.<ext>.assistant)
  feature codes        phone.py: greetings by phone, night service, the assistant's phone menu
  timeprofile.py       open / break / closed / holiday (public holidays: the `holidays` package)
  clock.py             the time they read (injectable); greetings.py: where greetings are; ics.py

DIDs, ring-group overflow and forwarding reach these as any application destination (dial plan).
"""
from __future__ import annotations

from . import clock

__all__ = ["clock", "register", "validate"]


def register() -> None:
    """Called by apps.py once it is complete (these modules import it)."""
    from .. import apps
    from .assistant import assistant
    from .byname import dial_by_name
    from .menu import attendant
    from .phone import assistant_menu, attendant_admin, night_service

    apps.register("attendant", attendant)
    apps.register("assistant", assistant)
    apps.register("app:dial-by-name", dial_by_name)
    apps.register("app:attendant-admin", attendant_admin)
    apps.register("app:night-service", night_service)
    apps.register("app:assistant-menu", assistant_menu)


def validate(config) -> list:
    """Checks that need the users (FieldErrors for PbxService.validate): targets that are no extension,
    operators, assistants' colleagues."""
    from appliance.apply import FieldError

    extensions = {u.extension for u in config.users if u.extension}
    cfg = config.pbx
    errors = []
    for i, att in enumerate(cfg.attendants):
        if att.operator and att.operator not in extensions:
            errors.append(FieldError(f"pbx.attendants.{i}.operator", f"{att.operator} is not an extension"))
        for j, menu in enumerate(att.menus):
            for k, option in enumerate(menu.options):
                if option.action in ("extension", "voicemail") and option.target not in extensions:
                    errors.append(FieldError(f"pbx.attendants.{i}.menus.{j}.options.{k}.target",
                                             f"key {option.key}: {option.target} is not an extension"))
        fallback = att.fallback
        if fallback.startswith("attendant:") and cfg.attendant(fallback.partition(":")[2]) is None:
            errors.append(FieldError(f"pbx.attendants.{i}.fallback", f"there is no attendant {fallback[10:]!r}"))
    for ext, settings in cfg.extensions.items():
        for n, choice in enumerate(settings.assistant.choices):
            if choice.kind == "colleague" and choice.number not in extensions:
                errors.append(FieldError(f"pbx.extensions.{ext}.assistant.choices.{n}.number",
                                         f"{choice.number} is not an extension"))
    if cfg.operator and cfg.operator not in extensions:
        errors.append(FieldError("pbx.operator", f"{cfg.operator} is not an extension"))
    return errors


from .. import apps as _apps  # noqa: E402,F401 (last: loading apps registers the applications above)
