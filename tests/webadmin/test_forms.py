"""ConfigError -> per-field messages, as every page uses it."""
from appliance.apply import ConfigError
from webadmin.forms import form_errors


def test_form_errors_split_fields_and_general():
    err = ConfigError({
        "users.2.extension": "is not in the expected format",
        "users.2.full_name": "String should have at least 1 character",
        "users.2": "something about the whole user",
        "users.3.email": "not mine",
        "network.lan.address": "Input is not a valid IPv4 interface",
        "": "extension number '201' is used by more than one user",
        "pbx": "extension 201 is also a ring group number",
    })
    fields, general = form_errors(err, prefix="users.2", fields={"network.lan.address": "lan"}, root_fields=True)
    # a second message for the same field does not replace the first; it is listed with the others
    assert fields == {"extension": "use 2 to 6 digits", "full_name": "this field is required",
                      "lan": "Input is not a valid IPv4 interface"}
    assert general == ["something about the whole user", "users.3.email: not mine",
                       "extension: '201' is already used by another user",
                       "pbx: extension 201 is also a ring group number"]


def test_duplicate_goes_to_its_field_when_free():
    err = ConfigError({"": "extension number '201' is used by more than one user"})
    assert form_errors(err, prefix="users.4", root_fields=True) == (
        {"extension": "'201' is already used by another user"}, [])
    assert form_errors(err) == ({}, ["extension number '201' is used by more than one user"])
