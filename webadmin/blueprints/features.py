"""Feature codes: the one list of numbers users dial for the box's functions (pbx.feature_codes), shown
and edited here (a clash names its field), and the printable phone guide for staff (every code with
what it does, park slots and paging groups), linked from their account page."""
from __future__ import annotations

import re

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from services.pbx.config import NUMBER, PREFIX_CODES, FeatureCodes
from webadmin import core, forms
from webadmin.core import N_

bp = Blueprint("features", __name__, url_prefix="/features")
NAV = [(N_("Telephony"), N_("Feature codes"), "features.index")]
# what each code does, in the words of the phone guide; a code of FeatureCodes not listed here shows the
# description of its field
TEXTS = {
    "voicemail": (N_("Voicemail"), N_("Listen to your voicemail messages.")),
    "voicemail_any": (N_("Any voicemail box"), N_("Listen to any voicemail box: you are asked its number and PIN.")),
    "pickup": (N_("Pick up"), N_("Answer a call ringing on a colleague's phone of your pickup group.")),
    "directed_pickup": (N_("Pick up an extension"),
                        N_("Dial it followed by an extension number to answer the call ringing there.")),
    "park": (N_("Park"), N_("Key it during a call, or transfer the call to it, to park the call: you hear the "
                            "slot number; anyone takes the call back by dialling the slot.")),
    "intercom": (N_("Intercom"), N_("Dial it followed by an extension number: that phone answers by itself on "
                                    "its speaker.")),
    "forward_on": (N_("Forward all calls"), N_("Dial it followed by the number to forward your calls to (or dial "
                                               "it alone and enter the number).")),
    "forward_off": (N_("Cancel forwarding"), N_("Your calls ring your phone again.")),
    "dnd_on": (N_("Do not disturb on"), N_("Callers get busy, or your voicemail.")),
    "dnd_off": (N_("Do not disturb off"), N_("Your phone rings again.")),
    "record_call": (N_("Record a call"), N_("Press it during a call to record the call; again to pause the "
                                            "recording, again to resume it.")),
    "screening": (N_("Call screening"), N_("Managers: switch on or off that your calls ring your secretary "
                                           "first.")),
    "secretary_intercom": (N_("Secretary intercom"), N_("Managers and secretaries: call the other one, whose "
                                                        "phone answers by itself on its speaker.")),
}


def entries(codes: FeatureCodes) -> list[dict]:
    """Each feature code: field, number, title, what it does, whether an extension follows it."""
    out = []
    for name, field in FeatureCodes.model_fields.items():
        title, text = TEXTS.get(name, (None, None))
        out.append({"name": name, "number": getattr(codes, name), "prefix": name in PREFIX_CODES,
                    "title": _(title) if title else name.replace("_", " ").capitalize(),
                    "text": _(text) if text else (field.description or "")})
    return out


def _page(errors=None, general=None, form=None, code=200):
    pbx = core.current_config().pbx
    return render_template("features/index.html", codes=entries(pbx.feature_codes), pbx=pbx, errors=errors or {},
                           general=general or [], form=form or {}), code


@bp.route("/")
@core.admin_required
def index():
    return _page()


@bp.route("/", methods=["POST"])
@core.admin_required
def save():
    form = {name: forms.text(name, 32).strip() for name in FeatureCodes.model_fields}
    errors = {name: _("a feature code is 1 to 32 of 0-9 * # +") for name, value in form.items()
              if not re.fullmatch(NUMBER, value)}
    if not errors:
        titles = {e["name"]: e["title"] for e in entries(FeatureCodes())}
        errors = {name: (_("%(number)s is already the code of %(other)s", number=number, other=titles[other])
                         if why == "same" else
                         _("%(number)s starts with the code of %(other)s: it could never be dialled",
                           number=number, other=titles[other]))
                  for name, (why, number, other) in FeatureCodes.model_construct(**form).duplicates().items()}
    if errors:
        return _page(errors, [], form, 400)

    def mutate(doc: dict) -> None:
        doc["pbx"].setdefault("feature_codes", {}).update(form)

    errors, general = forms.apply_form(_("feature codes"), mutate, prefix="pbx.feature_codes", top=True)
    if errors or general:
        return _page(errors, general, form, 400)
    flash(_("Feature codes saved."), "success")
    return redirect(url_for("features.index"))


PARK_FIELDS = ("first_slot", "slots", "timeout", "ring_back", "fallback")


@bp.route("/park", methods=["POST"])
@core.admin_required
def park():
    form = {name: forms.text(name, 32).strip() for name in PARK_FIELDS}

    def mutate(doc: dict) -> None:
        doc["pbx"]["park"] = {**form, "fallback": form["fallback"] or None}

    errors, general = forms.apply_form(_("call park settings"), mutate, prefix="pbx.park", top=True)
    if errors or general:
        return _page({f"park_{k}": v for k, v in errors.items()}, general, {f"park_{k}": v for k, v in form.items()},
                     400)
    flash(_("Call park settings saved."), "success")
    return redirect(url_for("features.index"))


@bp.route("/guide")
@core.login_required
def guide():
    """The phone guide for staff: one printable page."""
    config = core.current_config()
    pbx = config.pbx
    slots = pbx.park.numbers()
    return render_template("features/guide.html", codes=entries(pbx.feature_codes), slots=slots,
                           paging=pbx.paging_groups, company=config.system.company_name, user=core.current_user())
