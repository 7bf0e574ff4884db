"""Web admin pages: every module here exposing `bp` (and optionally NAV) is registered automatically.

Navigation groups, in this order: Overview, Directory, Telephony, Network, Internet, Security, Mail,
(any other, alphabetically), System. A page module, e.g. webadmin/blueprints/dhcp.py:

    from flask import Blueprint, flash, redirect, render_template, request, url_for
    from appliance.apply import ConfigError
    from appliance.service import ApplyError
    from webadmin import forms
    from webadmin.core import admin_required, apply_change, current_config

    bp = Blueprint("dhcp", __name__, url_prefix="/dhcp")
    NAV = [("Network", "DHCP", "dhcp.index")]

    @bp.route("/", methods=["GET", "POST"])
    @admin_required
    def index():
        errors, general = {}, []
        if request.method == "POST":
            start = forms.text("range_start")
            def mutate(doc):
                doc["dhcp"]["range_start"] = start
            try:
                apply_change("change the DHCP range", mutate)
            except ConfigError as err:      # "dhcp.range_start" -> errors["range_start"]
                errors, general = forms.form_errors(err, prefix="dhcp")
            except ApplyError as err:
                general = [str(err)]
            else:
                flash("DHCP settings saved.", "success")
                return redirect(url_for("dhcp.index"))
        return render_template("dhcp/index.html", section=current_config().dhcp,
                               errors=errors, general=general), (400 if errors or general else 200)

and its template webadmin/templates/dhcp/index.html:

    {% extends "base.html" %}
    {% import "macros.html" as m %}
    {% block title %}DHCP{% endblock %}
    {% block content %}
    {{ m.general(general) }}
    <form method="post" class="card">
      {{ csrf_field() }}
      {{ m.input("range_start", "First address", section.range_start, errors) }}
      <div class="form-actions"><button class="button">Save</button></div>
    </form>
    {% endblock %}

Tests: `from tests.webadmin.helpers import admin_client_for, post` (see that module).
"""
