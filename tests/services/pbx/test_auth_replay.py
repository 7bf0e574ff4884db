"""Captured digests replayed over the wire (toll fraud, a hijacked extension), algorithms, and challenges
sent once: each test fails on the PBX before digests were bound to the request, the source and a
nonce-count."""
import asyncio

from services.pbx.auth import authorization, pick_challenge
from services.pbx.sip.message import Request, Response

from .conftest import ALICE, CAROL, run
from .pbxrunner import PbxRunner, config
from .sipclient import SipClient

SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\n")


async def signed(client: SipClient, req: Request, user: str, password: str, algorithm: str | None = None) -> Request:
    """`req` with an answer to the challenge it gets (forced to `algorithm` if given); not sent yet."""
    client.send(req)
    challenge_resp = await client.final()
    assert challenge_resp.status in (401, 407), challenge_resp
    proxy = challenge_resp.status == 407
    challenge = pick_challenge(challenge_resp.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate"))
    if algorithm:
        challenge = challenge.replace("algorithm=SHA-256", f"algorithm={algorithm}")
    answer = client.request(req.method, str(req.uri), user, body=req.body,
                            headers={"Expires": req.get("Expires")} if req.get("Expires") else None)
    answer.add("Proxy-Authorization" if proxy else "Authorization",
               authorization(challenge, req.method, str(req.uri), user, password))
    return answer


async def final_for(client: SipClient, req: Request) -> Response:
    """The final response to `req` (answers to earlier requests are skipped)."""
    for _ in range(20):
        resp = await client.final()
        if resp.call_id == req.call_id:
            return resp
    raise AssertionError(f"no final response to {req!r}")


async def silent(client: SipClient, seconds: float) -> list:
    """What the client receives in `seconds`."""
    got = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        try:
            got.append(await client.recv(left))
        except TimeoutError:
            break
    return got


def test_replayed_invite_digest_calls_no_other_number(pbx):
    async def main():
        addr = ("127.0.0.1", pbx.port)
        async with SipClient(addr) as alice, SipClient(addr) as carol:
            assert (await carol.register("203", CAROL["sip_secret"])).status == 200
            # alice calls 202 (not registered: 480); an eavesdropper keeps her Proxy-Authorization
            invite = await signed(alice, alice.request("INVITE", "sip:202@127.0.0.1", "201", body=SDP),
                                  "201", ALICE["sip_secret"])
            alice.send(invite)
            assert (await alice.final()).status == 480
            captured = invite.get("Proxy-Authorization")
            for number in ("203", "202"):  # another number; the same number again
                replay = alice.request("INVITE", f"sip:{number}@127.0.0.1", "201", body=SDP,
                                       headers={"Proxy-Authorization": captured})
                alice.send(replay)
                assert (await final_for(alice, replay)).status == 407, number
            assert [m for m in await silent(carol, 0.5) if isinstance(m, Request)] == []
            assert pbx.svc.active_calls() == []
    run(main())


def test_replayed_register_adds_no_phone(pbx):
    async def main():
        addr = ("127.0.0.1", pbx.port)
        async with SipClient(addr) as owner, SipClient(addr, local_host="127.0.0.2") as thief:
            register = await signed(owner, owner.request("REGISTER", "sip:127.0.0.1", "201",
                                                         headers={"Expires": "300"}), "201", ALICE["sip_secret"])
            owner.send(register)
            assert (await owner.final()).status == 200
            captured = register.get("Authorization")
            # from another host, with the thief's own Contact
            thief.send(thief.request("REGISTER", "sip:127.0.0.1", "201",
                                     headers={"Expires": "3600", "Authorization": captured}))
            assert (await thief.final()).status == 401
            # from the same host: removing the owner's phones
            again = owner.request("REGISTER", "sip:127.0.0.1", "201", headers={"Expires": "0",
                                                                                "Authorization": captured})
            again.set("Contact", "*")
            owner.send(again)
            resp = await owner.final()
            assert resp.status == 401 and "stale=true" in resp.get("WWW-Authenticate")
            assert [r["source"] for r in pbx.svc.registrations()] == [f"udp:127.0.0.1:{owner.port}"]
    run(main())


def test_md5_refused_when_only_sha256_is_configured(tmp_path):
    with PbxRunner(tmp_path / "p", config([ALICE], digest_algorithms=["SHA-256"])) as pbx:
        async def main():
            async with SipClient(("127.0.0.1", pbx.port)) as c:
                md5 = await signed(c, c.request("REGISTER", "sip:127.0.0.1", "201"), "201", ALICE["sip_secret"],
                                   algorithm="MD5")
                c.send(md5)
                resp = await c.final()
                assert resp.status == 401 and resp.get_all("WWW-Authenticate")[0].count("algorithm=SHA-256") == 1
                assert (await c.register("201", ALICE["sip_secret"])).status == 200  # SHA-256 works
            assert len(pbx.svc.registrations()) == 1
        run(main())


def test_challenges_and_refusals_are_sent_once(pbx):
    """A spoofed INVITE must not make the box send retransmissions (timer G: ~10 copies) to a victim."""
    async def main():
        async with SipClient(("127.0.0.1", pbx.port)) as victim:
            # the 407 is taken by `signed` and never ACKed; the wrong answer gets a 403, never ACKed either
            wrong = await signed(victim, victim.request("INVITE", "sip:202@127.0.0.1", "201", body=SDP),
                                 "201", "not-the-secret")
            victim.send(wrong)
            got = await silent(victim, 2.5)  # timer G would resend both at 0.5 and 1.5 s
            finals = [m.status for m in got if isinstance(m, Response) and m.status >= 200]
            assert finals == [403], finals
    run(main())
