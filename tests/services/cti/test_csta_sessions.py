"""CSTA XML sessions over TCP and TLS with a client written from the standards (cstaclient.py): sign-in
against the directory and application accounts, device scope, keep-alive, malformed and hostile XML,
unknown services, limits."""
import socket

import pytest

from .conftest import APP_PASSWORD, PASSWORDS
from .cstaclient import ACSE, CstaClient


@pytest.mark.parametrize("tls", [False, True])
def test_staff_session_reaches_only_its_own_extension(box, tls):
    port = box.cti.tls if tls else box.cti.tcp
    with CstaClient(port, tls=tls) as c:
        ok = c.start_session("bob", PASSWORDS["bob"])
        assert ok.name == "StartApplicationSessionPosResponse", ok
        assert ok.value("sessionID") and ok.value("actualSessionDuration") == "60"
        assert c.monitor("202")
        refused = c.csta("MonitorStart", "<monitorObject><deviceObject>203</deviceObject></monitorObject>")
        assert refused.name == "CSTAErrorCode" and refused.value("operation") == "privilegeViolationOnSpecifiedDevice"
        refused = c.csta("MakeCall", "<callingDevice>203</callingDevice><calledDirectoryNumber>201"
                                     "</calledDirectoryNumber>")
        assert refused.value("operation") == "privilegeViolationOnSpecifiedDevice"
        snap = c.csta("SnapshotDevice", "<snapshotObject>202</snapshotObject>")
        assert snap.name == "SnapshotDeviceResponse", snap
        assert c.csta("SnapshotDevice", "<snapshotObject>201</snapshotObject>").name == "CSTAErrorCode"
        keep = c.request(f'<ResetApplicationSessionTimer xmlns="{ACSE}"><sessionID>{ok.value("sessionID")}'
                         f'</sessionID><requestedSessionDuration>30</requestedSessionDuration>'
                         f'</ResetApplicationSessionTimer>')
        assert keep.name == "ResetApplicationSessionTimerPosResponse" and keep.value("actualSessionDuration") == "30"
        devices = c.csta("GetSwitchingFunctionDevices")
        assert devices.name == "GetSwitchingFunctionDevicesResponse"
        listing = c.wait_event("SwitchingFunctionDevices")
        assert listing.all("deviceID") == ["202"] and listing.invoke == "9999"
        assert c.csta("SystemStatus", "<systemStatus>normal</systemStatus>").name == "SystemStatusResponse"
        stop = c.request(f'<StopApplicationSession xmlns="{ACSE}"><sessionID>{ok.value("sessionID")}</sessionID>'
                         f'<sessionEndReason><definedEndReason>normal</definedEndReason></sessionEndReason>'
                         f'</StopApplicationSession>')
        assert stop.name == "StopApplicationSessionPosResponse"
        with pytest.raises(ConnectionError):
            c.read(5)


def test_application_account_has_its_scope_and_wrong_passwords_are_refused(box):
    with CstaClient(box.cti.tcp) as c:
        bad = c.start_session("crm", "not-the-password")
        assert bad.name == "StartApplicationSessionNegResponse"
        assert bad.value("errorCode", "definedError") == "invalidApplicationInfo"
        assert c.csta("MonitorStart", "<monitorObject><deviceObject>202</deviceObject></monitorObject>"
                      ).value("operation") == "securityViolation"  # nothing before a session
        assert c.start_session("crm", APP_PASSWORD).name == "StartApplicationSessionPosResponse"
        assert c.monitor("202") and c.monitor("203")
        assert c.csta("MonitorStart", "<monitorObject><deviceObject>201</deviceObject></monitorObject>"
                      ).value("operation") == "privilegeViolationOnSpecifiedDevice"
    with CstaClient(box.cti.tcp) as c:
        bare = c.request(f'<StartApplicationSession xmlns="{ACSE}"><applicationInfo><applicationID>x</applicationID>'
                         f'<applicationSpecificInfo><userName>crm</userName><password>{APP_PASSWORD}</password>'
                         f'</applicationSpecificInfo></applicationInfo></StartApplicationSession>')
        assert bare.name == "StartApplicationSessionPosResponse", bare  # no protocol versions asked: ours
    with CstaClient(box.cti.tcp) as c:
        old = c.request(f'<StartApplicationSession xmlns="{ACSE}"><applicationInfo><applicationSpecificInfo>'
                        f'<userName>crm</userName><password>{APP_PASSWORD}</password></applicationSpecificInfo>'
                        f'</applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-'
                        f'international.org/standards/ecma-323/csta/ed2</protocolVersion>'
                        f'</requestedProtocolVersions></StartApplicationSession>')
        assert old.value("errorCode", "definedError") == "requestedProtocolVersionNotSupported"
    with CstaClient(box.cti.tcp) as c:
        for _ in range(3):
            assert c.start_session("alice", "wrong-password").name == "StartApplicationSessionNegResponse"
        with pytest.raises(ConnectionError):
            c.read(5)  # three failures end the connection


def test_malformed_xml_unknown_services_and_entities_get_errors_and_the_session_survives(box):
    with CstaClient(box.cti.tcp) as c:
        assert c.start_session("alice", PASSWORDS["alice"]).name == "StartApplicationSessionPosResponse"
        invoke = c.send_raw(b"<MonitorStart><monitorObject>")
        bad = c.read()
        assert bad.invoke == invoke and bad.name == "CSTAErrorCode"
        assert bad.value("operation") == "invalidParameterValue" and "malformed" in bad.raw.decode()
        unknown = c.csta("TeleportCall", "<callID>1</callID>")
        assert unknown.name == "CSTAErrorCode" and unknown.value("operation") == "requestIncompatibleWithObject"
        bomb = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]><MonitorStart xmlns="http://www.ecma-international.org/'
                b'standards/ecma-323/csta/ed3"><monitorObject><deviceObject>&c;</deviceObject></monitorObject>'
                b'</MonitorStart>')
        invoke = c.send_raw(bomb)
        refused = c.read()
        assert refused.invoke == invoke and refused.name == "CSTAErrorCode" and "DTD" in refused.raw.decode()
        external = (b'<?xml version="1.0"?><!DOCTYPE m SYSTEM "file:///etc/passwd"><SystemStatus/>')
        c.send_raw(external)
        assert c.read().name == "CSTAErrorCode"
        deep = b"<a>" * 100 + b"</a>" * 100
        c.send_raw(deep)
        assert "too deep" in c.read().raw.decode()
        assert c.monitor("201")  # still signed in, still served


def test_the_session_ends_without_keep_alive_and_limits_hold(tmp_path):
    from tests.services.pbx.pbxrunner import PbxRunner

    from .conftest import CtiRunner, document
    cfg = document(session_duration=10, max_sessions=2, requests_per_second=5)
    with PbxRunner(tmp_path / "box", cfg) as pbx, CtiRunner(pbx.ctx, cfg) as cti:
        with CstaClient(cti.tcp) as a, CstaClient(cti.tcp) as b:
            a.start_session("alice", PASSWORDS["alice"])
            b.start_session("bob", PASSWORDS["bob"])
            third = socket.create_connection(("127.0.0.1", cti.tcp), timeout=5)
            assert third.recv(10) == b""  # a third connection is closed at once
            third.close()
            answers = [b.csta("SystemStatus").name for _ in range(12)]
            assert "CSTAErrorCode" in answers and answers[0] == "SystemStatusResponse"  # rate limited, not dropped
            with pytest.raises(ConnectionError):
                a.read(15)  # no ResetApplicationSessionTimer within 10 s: the session ends


def test_a_frame_without_the_header_ends_the_connection(box):
    with CstaClient(box.cti.tcp) as c:
        c.sock.sendall(b"<StartApplicationSession/>")
        with pytest.raises(ConnectionError):
            c.read(5)
