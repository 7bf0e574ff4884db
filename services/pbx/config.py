"""The `pbx` configuration section: ports, dial plan, groups, trunks, routes, DIDs, per-extension settings."""
from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Collection
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from appliance.schema import Section, field_errors
from appliance.service import ServiceConfig
from appliance.text import SafeText

NUMBER = r"^[0-9*#+]{1,32}$"
NAME = r"^[A-Za-z0-9_-]{1,32}$"
APPLICATION = r"^(voicemail|attendant|assistant|queue|conference|app):([A-Za-z0-9_-]{1,32})$"  # apps.py
TARGET = r"^([0-9*#+]{1,32}|" + APPLICATION[1:-1] + ")$"  # a number or an application
PermissionClass = Literal["internal", "local", "national", "international"]
PERMISSION_ORDER = ("internal", "local", "national", "international")


class ExtensionSettings(Section):
    """Per-extension call handling (keyed by extension number in PbxConfig.extensions)."""

    dnd: bool = False
    forward_always: str | None = Field(default=None, pattern=TARGET)
    forward_busy: str | None = Field(default=None, pattern=TARGET)
    forward_no_answer: str | None = Field(default=None, pattern=TARGET)
    no_answer_timeout: int = Field(default=20, ge=5, le=300)
    blf_watchers: Literal["everyone", "same_groups", "nobody"] = Field(
        default="everyone", description="who may watch this extension's calls on a busy lamp field: every "
        "extension, those sharing a ring group with it, or nobody but itself")
    moh_class: str = Field(default="default", pattern=NAME, description="music on hold class the other party "
                           "hears while this extension holds a call (an unknown class: the default one)")
    mwi_unsolicited: bool = Field(default=False, description="phones that do not subscribe to message-summary: "
                                  "send each registered phone of this extension a NOTIFY when its voicemail changes")
    voicemail: bool | None = Field(default=None, description="callers reach the extension's voicemail box on no "
                                   "answer, busy and do not disturb (when no forwarding of that case is set); "
                                   "empty: on")
    voicemail_pin_from_own: bool = Field(default=True, description="the owner's menu asks the PIN even when "
                                         "called from the box's own extension")
    pickup_group: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,32})?$", description="extensions sharing "
                              "a pickup group name pick up each other's ringing calls (as well as those of the "
                              "ring groups they are members of)")
    assistant: "PersonalAssistant" = Field(default_factory=lambda: PersonalAssistant(),
                                           description="personal assistant on no answer")
    voicemail_email: Literal["off", "attach", "notify"] = Field(
        default="off", description="each new voicemail mailed to the user's address: with the recording "
        "attached, as a notice only, or not at all")
    voicemail_email_delete: bool = Field(default=False, description="with attach: the message leaves the "
                                         "voicemail box once the mail service has taken the mail")
    voicemail_compressed: bool = Field(default=False, description="keep an MP3 copy beside each message's WAV "
                                       "(made with lame); with attach, the mail carries it too")
    voicemail_temporary_until: datetime.date | None = Field(default=None, description="the last day callers hear the "
                                                   "temporary greeting (the box's time zone); empty: until removed")


class RingGroup(Section):
    number: str = Field(pattern=r"^[0-9]{2,6}$")
    name: SafeText = Field(default="", max_length=60)
    strategy: Literal["simultaneous", "in_order", "round_robin"] = "simultaneous"
    members: list[str] = Field(default_factory=list, description="extension numbers")
    member_timeout: int = Field(default=15, ge=1, le=300, description="seconds per member (in order/round robin)")
    timeout: int = Field(default=30, ge=1, le=600, description="total seconds before overflow")
    overflow: str | None = Field(default=None, pattern=TARGET, description="extension, group, number or "
                                 "application (app:echo, voicemail:201...)")
    pickup: bool = Field(default=True, description="the members form a pickup group: each may pick up a call "
                         "ringing another member with the group pickup code")


class Trunk(Section):
    name: str = Field(pattern=NAME)
    host: SafeText = Field(min_length=1, max_length=253)
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = "udp"
    username: SafeText = Field(default="", max_length=64)
    auth_password: SafeText = Field(default="", max_length=128)
    registration: bool = Field(default=False, description="register to the carrier")
    register_expires: int = Field(default=600, ge=60, le=86400)
    from_number: SafeText = Field(default="", max_length=32, description="caller number presented on this trunk")
    number_format: Literal["national", "e164"] = "national"
    max_channels: int = Field(default=30, ge=1, le=1000)
    invite_timeout: float = Field(default=8.0, ge=0.5, le=64.0, description="seconds without answer -> failover")


class OutboundRoute(Section):
    name: str = Field(pattern=NAME)
    prefix: str = Field(pattern=r"^[0-9*#+]{0,32}$", description="dialled-number prefix this route takes")
    strip: int = Field(default=0, ge=0, le=32)
    prepend: str = Field(default="", pattern=r"^[0-9*#+]{0,32}$")
    trunks: list[str] = Field(min_length=1, description="trunk names in order: primary, then backups")


class Did(Section):
    number: str = Field(pattern=NUMBER, description="number as received from the carrier (any format)")
    destination: str = Field(pattern=r"^([0-9]{2,6}|" + APPLICATION[1:-1] + ")$", description="extension, ring group "
                             "or application")


class AbuseLimits(Section):
    max_auth_failures: int = Field(default=10, ge=1, le=1000)
    failure_window: int = Field(default=60, ge=1, le=3600)
    max_requests: int = Field(default=300, ge=10, le=100000, description="requests per source per window")
    request_window: int = Field(default=5, ge=1, le=600)
    ban_seconds: int = Field(default=600, ge=1, le=86400)
    trusted: list[str] = Field(default_factory=list, description="source IPs never banned")


class MohFile(Section):
    id: str = Field(pattern=r"^[0-9a-f]{12}$", description="stored as state/pbx/moh/<class>/<id>-<rate>.wav")
    title: SafeText = Field(default="", max_length=100, description="the uploaded file's name")
    seconds: float = Field(default=0.0, ge=0, le=600)


class MohClass(Section):
    name: str = Field(pattern=NAME)
    files: list[MohFile] = Field(default_factory=list, max_length=50, description="played in turn; none: the "
                                 "built-in track")


class VoicemailLimits(Section):
    storage_minutes: int = Field(default=60, ge=20, le=12000, description="minutes of messages a box may hold "
                                 "in all its folders (20 minutes to 200 hours)")
    max_messages: int = Field(default=100, ge=1, le=10000, description="messages a box may hold in all")
    max_message_seconds: int = Field(default=180, ge=10, le=3600, description="longest message a caller may leave")


class VoicemailSettings(Section):
    limits: VoicemailLimits = VoicemailLimits()
    operator: str | None = Field(default=None, pattern=r"^[0-9]{2,6}$", description="extension a caller reaches "
                                 "by pressing 0 while leaving a message; empty: 0 just ends the message")
    silence_stop: int = Field(default=6, ge=0, le=60, description="seconds of silence that end a message; 0: never")


PREFIX_CODES = ("directed_pickup", "intercom", "forward_on")  # feature codes followed by a number


RoomKey = Literal["", "*", "#", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]


class ConferenceRoom(Section):
    """A meet-me room (services/pbx/conference): callers dialling `number` reach `conference:<name>`."""
    number: str = Field(pattern=r"^[0-9]{2,6}$", description="the number participants dial")
    name: str = Field(pattern=NAME, description="the room's destination: conference:<name>")
    title: SafeText = Field(default="", max_length=60)
    pin_hash: str | None = Field(default=None, max_length=200, description="argon2 hash of the room's PIN (4 to "
                                 "12 digits; three wrong attempts end the call); empty: no PIN")
    max_participants: int = Field(default=10, ge=2, le=50)
    alone: Literal["music", "prompt"] = Field(default="music", description="what the only participant hears: "
                                              "hold music, or once the prompt saying they are alone")
    tones: bool = Field(default=True, description="a tone to the room when someone joins or leaves")
    mute_key: Literal["*", "#", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"] = Field(
        default="*", description="the key a participant presses to mute or unmute themselves")
    count_key: RoomKey = Field(default="1", description="the key a participant presses to hear how many take "
                               "part (empty: none; the mute key wins over a code on the same key)")
    lock_key: RoomKey = Field(default="2", description="a leader's key to lock the room (only leaders may join "
                              "then) or unlock it")
    remove_key: RoomKey = Field(default="3", description="a leader's key to remove the participant who joined last")
    leaders: list[str] = Field(default_factory=list, max_length=20, description="extensions whose participants "
                               "lead the room (lock it, remove the last one in)")

    @field_validator("leaders")
    @classmethod
    def _extensions(cls, leaders: list[str]) -> list[str]:
        for ext in leaders:
            if not re.fullmatch(r"[0-9]{2,6}", ext):
                raise ValueError(f"{ext!r} is no extension number")
        return leaders

    @field_validator("name")
    @classmethod
    def _not_adhoc(cls, name: str) -> str:
        if name.startswith("3way-"):
            raise ValueError("room names starting with 3way- are kept for three-party conferences")
        return name


# -- personal assistant, time profiles, auto attendants (services/pbx/attendant/) --------------------
EXTENSION = r"^[0-9]{2,6}$"
AssistantKind = Literal["voicemail", "mobile", "external", "colleague", "operator"]


class AssistantChoice(Section):
    """One key the caller of an unanswered extension may press (keys 1 to 5 in the list's order)."""
    kind: AssistantKind
    number: str = Field(default="", pattern=r"^[0-9*#+]{0,32}$", description="external: the number; colleague: "
                        "the extension; mobile: empty (the assistant's mobile); voicemail, operator: empty")


class PersonalAssistant(Section):
    """When a call to the extension is not answered: the user's greeting, then up to five choices."""
    enabled: bool = False
    greeting_text: SafeText = Field(default="", max_length=500, description="spoken by espeak-ng when the user "
                                    "recorded no greeting; empty: the generated one")
    mobile: str = Field(default="", pattern=r"^[0-9+]{0,32}$", description="the user's mobile number")
    choices: list[AssistantChoice] = Field(default_factory=list, max_length=5)

    @model_validator(mode="after")
    def _choices(self) -> "PersonalAssistant":
        for choice in self.choices:
            if choice.kind in ("external", "colleague") and not choice.number:
                raise ValueError(f"the {choice.kind} choice needs a number")
            if choice.kind == "colleague" and not re.fullmatch(EXTENSION, choice.number):
                raise ValueError(f"colleague {choice.number!r} is not an extension number")
            if choice.kind == "mobile" and not self.mobile:
                raise ValueError("the mobile choice needs the mobile number")
        if self.enabled and not self.choices:
            raise ValueError("an assistant needs at least one choice")
        return self


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ProfileState = Literal["open", "closed", "holiday", "break"]
HHMM = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
SHORTEST_BREAK = 5  # minutes: a shorter gap between two opening ranges is a typing mistake


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


class OpenHours(Section):
    start: str = Field(pattern=HHMM)
    end: str = Field(pattern=HHMM)


class CompanyDate(Section):
    """A day (or days) the company is closed: a holiday of its own."""
    date: datetime.date
    end: datetime.date | None = Field(default=None, description="last day of a range; empty: one day")
    name: SafeText = Field(default="", max_length=80)

    @model_validator(mode="after")
    def _order(self) -> "CompanyDate":
        if self.end is not None and not self.date <= self.end <= self.date + datetime.timedelta(days=366):
            raise ValueError("the last day must be on or after the first, within a year")
        return self


class TimeProfile(Section):
    """Opening hours per weekday (the gaps between a day's ranges are breaks), public holidays of the
    country, the company's own dates and a manual night service override."""
    name: str = Field(pattern=NAME)
    hours: dict[Weekday, list[OpenHours]] = Field(default_factory=dict, description="a day not listed: closed")
    country: str = Field(default="FR", pattern=r"^[A-Z]{2}$", description="whose public holidays count")
    public_holidays: bool = True
    dates: list[CompanyDate] = Field(default_factory=list, max_length=500)
    night_service: bool = Field(default=False, description="closed now, whatever the hours say (feature code, "
                                "web admin)")

    @field_validator("hours")
    @classmethod
    def _ranges(cls, hours: dict[str, list[OpenHours]]) -> dict[str, list[OpenHours]]:
        for day, ranges in hours.items():
            if len(ranges) > 4:
                raise ValueError(f"{day}: at most 4 opening ranges a day")
            previous = None
            for r in ranges:
                if minutes(r.end) <= minutes(r.start):
                    raise ValueError(f"{day}: {r.start}-{r.end} ends before it starts")
                if previous is not None:
                    gap = minutes(r.start) - minutes(previous.end)
                    if gap < 0:
                        raise ValueError(f"{day}: {r.start}-{r.end} overlaps or comes before {previous.start}-"
                                         f"{previous.end} (list the ranges in order)")
                    if gap < SHORTEST_BREAK:
                        raise ValueError(f"{day}: a break of {gap} minutes between {previous.end} and {r.start} "
                                         "makes no sense (join the ranges)")
                previous = r
        return hours

    @field_validator("country")
    @classmethod
    def _country(cls, code: str) -> str:
        import holidays  # a large package: only where profiles are checked
        if code not in holidays.list_supported_countries():
            raise ValueError(f"no public holidays are known for country {code!r}")
        return code


MenuAction = Literal["extension", "group", "voicemail", "menu", "attendant", "operator", "external",
                     "dial_by_name", "repeat", "hangup"]
TARGETED = {"extension": EXTENSION, "group": EXTENSION, "voicemail": EXTENSION, "menu": NAME, "attendant": NAME,
            "external": r"^\+?[0-9]{2,32}$"}


class MenuOption(Section):
    key: str = Field(pattern=r"^[0-9*#]$")
    action: MenuAction
    target: str = Field(default="", max_length=32, description="extension, group, box, menu, attendant or number")

    @model_validator(mode="after")
    def _target(self) -> "MenuOption":
        pattern = TARGETED.get(self.action)
        if pattern and not re.fullmatch(pattern, self.target):
            raise ValueError(f"key {self.key}: {self.action} needs a valid target, not {self.target!r}")
        if not pattern and self.target:
            raise ValueError(f"key {self.key}: {self.action} takes no target")
        return self


class Menu(Section):
    name: str = Field(pattern=NAME)
    greeting_text: SafeText = Field(default="", max_length=1000, description="spoken by espeak-ng when no "
                                    "greeting was recorded or uploaded; empty: the generated welcome")
    number: str = Field(default="", pattern=r"^([0-9]{1,4})?$", description="greeting number for recording it by "
                        "phone (feature code); empty: not by phone")
    state_texts: dict[ProfileState, SafeText] = Field(default_factory=dict, description="the greeting of this "
                                                      "menu per state of the time profile (typed, spoken by espeak-ng;"
                                                      " a recording of that state comes first); a state not listed:"
                                                      " the greeting above")
    options: list[MenuOption] = Field(default_factory=list, max_length=12)
    dial_extensions: bool = Field(default=True, description="callers may dial an extension number at any time")

    @field_validator("state_texts")
    @classmethod
    def _short(cls, texts: dict) -> dict:
        if any(len(t) > 1000 for t in texts.values()):
            raise ValueError("a greeting text has at most 1000 characters")
        return texts

    @field_validator("options")
    @classmethod
    def _keys(cls, options: list[MenuOption]) -> list[MenuOption]:
        keys = [o.key for o in options]
        if len(set(keys)) != len(keys):
            raise ValueError("each key may lead to one option only")
        return options


class Attendant(Section):
    name: str = Field(pattern=NAME)
    profile: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,32})?$", description="time profile; empty: "
                         "always open")
    menus: list[Menu] = Field(min_length=1, max_length=50, description="the first is the entry menu")
    entry: dict[ProfileState, str] = Field(default_factory=dict, description="the menu a caller starts in, per "
                                           "state of the time profile; a state not listed: the first menu")
    operator: str = Field(default="", pattern=r"^([0-9]{2,6})?$", description="empty: pbx.operator")
    permission: PermissionClass = Field(default="internal", description="external numbers the menus may reach")
    timeout: int = Field(default=5, ge=2, le=30, description="seconds to wait for a key after a greeting")
    attempts: int = Field(default=3, ge=1, le=5, description="timeouts and invalid keys before the fallback")
    fallback: str = Field(default="", pattern=r"^(|" + TARGET[2:-2] + ")$", description="where the caller goes "
                          "then (extension, group, number or application); empty: goodbye")
    language: Literal["", "en", "fr", "zh-TW"] = Field(default="", description="empty: the box's prompt language")

    @field_validator("menus")
    @classmethod
    def _unique(cls, menus: list[Menu]) -> list[Menu]:
        names = [m.name for m in menus]
        if len(set(names)) != len(names):
            raise ValueError("menu names must be unique within an attendant")
        return menus

    def menu(self, name: str) -> Menu | None:
        return next((m for m in self.menus if m.name == name), None)


class FeatureCodes(Section):
    """The numbers users dial for the box's own functions (one list; each a distinct number). Those of
    PREFIX_CODES are dialled followed by an extension (**202: pick up 202's ringing call)."""
    voicemail: str = Field(default="*97", pattern=NUMBER, description="own voicemail box")
    voicemail_any: str = Field(default="*98", pattern=NUMBER, description="any voicemail box (number and PIN asked)")
    agent_login: str = Field(default="*51", pattern=NUMBER, description="call centre agent: log in to one's queues")
    agent_logout: str = Field(default="*52", pattern=NUMBER, description="call centre agent: log out")
    agent_pause: str = Field(default="*53", pattern=NUMBER, description="call centre agent: pause (a reason "
                             "digit is asked: 1 break, 2 lunch, 3 meeting, 4 training, 5 paperwork)")
    agent_resume: str = Field(default="*54", pattern=NUMBER, description="call centre agent: end a pause")
    conference: str = Field(default="*3", pattern=NUMBER, description="three-party conference: key it during a "
                            "call followed by a third number and # (the other party hears music until the third "
                            "answers); or, with one call held and another one (or held too), dial it to join them "
                            "all in one conference")
    dial_by_name: str = Field(default="*34", pattern=NUMBER, description="dial by name (keypad letters)")
    attendant_admin: str = Field(default="*35", pattern=NUMBER, description="record an attendant greeting (admins, "
                                 "voicemail PIN)")
    night_service: str = Field(default="*36", pattern=NUMBER, description="night service on/off (admins, PIN)")
    prompt_record: str = Field(default="*39", pattern=NUMBER, description="record one of the box's voice prompts "
                               "by its number on the prompts page (admins, voicemail PIN)")
    assistant: str = Field(default="*37", pattern=NUMBER, description="own personal assistant on/off")
    forward_on: str = Field(default="*72", pattern=NUMBER, description="forward all calls: the number dialled "
                            "after the code (*72 0612345678), else asked")
    forward_off: str = Field(default="*73", pattern=NUMBER, description="cancel forwarding of all calls")
    dnd_on: str = Field(default="*78", pattern=NUMBER, description="do not disturb on")
    dnd_off: str = Field(default="*79", pattern=NUMBER, description="do not disturb off")

    pickup: str = Field(default="*8", pattern=NUMBER, description="pick up a call ringing in your pickup group")
    directed_pickup: str = Field(default="**", pattern=NUMBER, description="followed by an extension: pick up "
                                 "the call ringing that extension")
    park: str = Field(default="*70", pattern=NUMBER, description="key it during a call (or transfer a call here) to "
                      "park the call in the first free park slot (the slot is announced); dial the slot to take it "
                      "back")
    intercom: str = Field(default="*80", pattern=NUMBER, description="followed by an extension: intercom call, "
                          "the phone answers by itself on its speaker")
    record_call: str = Field(default="*1", pattern=NUMBER, description="during a call: start or stop recording it")
    screening: str = Field(default="*48", pattern=NUMBER, description="a manager turns call screening by the "
                           "secretary on or off")
    secretary_intercom: str = Field(default="*49", pattern=NUMBER, description="a manager calls their secretary "
                                    "(a secretary their manager) on the intercom, no number to dial")
    supervisor_monitor: str = Field(default="*55", pattern=NUMBER, description="followed by an agent's extension: "
                                    "a queue's supervisor listens to the agent's call unheard")
    supervisor_whisper: str = Field(default="*56", pattern=NUMBER, description="followed by an agent's extension: "
                                    "a queue's supervisor speaks to the agent only, the caller does not hear")
    supervisor_barge: str = Field(default="*57", pattern=NUMBER, description="followed by an agent's extension: "
                                  "a queue's supervisor joins the agent's call")

    def destinations(self) -> dict[str, str]:
        """dialled number -> application destination (services/pbx/voicemail, acd, conference, features and
        attendant, secretary.py register these)."""
        return {self.voicemail: "app:voicemail-own", self.voicemail_any: "app:voicemail-any",
                self.agent_login: "app:agent-login", self.agent_logout: "app:agent-logout",
                self.agent_pause: "app:agent-pause", self.agent_resume: "app:agent-resume",
                self.conference: "app:conference-join", self.park: "app:park",
                self.dial_by_name: "app:dial-by-name", self.attendant_admin: "app:attendant-admin",
                self.night_service: "app:night-service", self.assistant: "app:assistant-menu",
                self.prompt_record: "app:prompt-record",
                self.forward_on: "app:forward-on", self.forward_off: "app:forward-off",
                self.dnd_on: "app:dnd-on", self.dnd_off: "app:dnd-off",
                self.screening: "app:screening"}

    def duplicates(self) -> dict[str, tuple[str, str, str]]:
        """field -> (why, its number, the other field) for each clash: "same" number as an earlier code,
        or it starts with the "prefix" code of the other field (it could never be dialled)."""
        values = self.model_dump()
        clashes: dict[str, tuple[str, str, str]] = {}
        seen: dict[str, str] = {}
        for name, number in values.items():
            if number in seen:
                clashes[name] = ("same", number, seen[number])
            seen.setdefault(number, name)
        for prefix in PREFIX_CODES:
            for name, number in values.items():
                if name != prefix and name not in clashes and number.startswith(values[prefix]):
                    clashes[name] = ("prefix", number, prefix)
        return clashes

    @model_validator(mode="after")
    def _distinct(self) -> "FeatureCodes":
        clashes = self.duplicates()
        if clashes:
            raise ValueError("each feature code must be a different number: " + "; ".join(
                f"{name}: {number} {'is also the code of' if why == 'same' else 'starts with the code of'} {other}"
                for name, (why, number, other) in clashes.items()))
        return self


class ParkSettings(Section):
    first_slot: str = Field(default="701", pattern=r"^[0-9]{2,6}$", description="number of the first park slot")
    slots: int = Field(default=9, ge=1, le=50, description="park slots, numbered from first_slot on")
    timeout: int = Field(default=120, ge=10, le=3600, description="seconds a call stays parked before it rings "
                         "the parker again")
    ring_back: int = Field(default=20, ge=5, le=300, description="seconds the parker's phone rings at the timeout")
    fallback: str | None = Field(default=None, pattern=TARGET, description="where a parked call goes when the "
                                 "parker does not answer at the timeout; empty: the operator (voicemail.operator), "
                                 "else the number the caller first dialled")

    def numbers(self) -> list[str]:
        first = int(self.first_slot)
        width = len(self.first_slot)
        return [str(first + i).zfill(width) for i in range(self.slots) if len(str(first + i)) <= 6]


class PagingGroup(Section):
    number: str = Field(pattern=r"^[0-9]{2,6}$")
    name: SafeText = Field(default="", max_length=60)
    members: list[str] = Field(default_factory=list, max_length=100, description="extension numbers paged")
    max_seconds: int = Field(default=120, ge=5, le=3600, description="longest announcement")


class QueueMember(Section):
    """An agent of a call queue: an extension, with a skill level for this queue (skills strategy)."""
    agent: str = Field(pattern=r"^[0-9]{2,6}$", description="the agent's extension")
    skill: int = Field(default=5, ge=1, le=10, description="1 (beginner) to 10 (expert): the skills strategy "
                       "gives a caller the free agent with the highest level")


class CallQueue(Section):
    """A call centre queue (services/pbx/acd): callers dial `number` or reach `queue:<name>`."""
    number: str = Field(pattern=r"^[0-9]{2,6}$")
    name: str = Field(pattern=NAME, description="the destination is queue:<name>")
    title: SafeText = Field(default="", max_length=60)
    strategy: Literal["ring_all", "longest_idle", "fewest_calls", "round_robin", "skills"] = "longest_idle"
    members: list[QueueMember] = Field(default_factory=list, max_length=200)
    max_wait: int = Field(default=300, ge=10, le=7200, description="seconds a caller waits before overflow")
    max_length: int = Field(default=20, ge=1, le=1000, description="callers waiting at most; more: overflow")
    overflow: str | None = Field(default=None, pattern=TARGET, description="where callers go on timeout, when the "
                                 "queue is full or no agent is logged in; empty: a sorry message")
    moh_class: str = Field(default="default", pattern=NAME)
    announce_every: int = Field(default=30, ge=0, le=600, description="seconds between position and estimated "
                                "wait announcements; 0: none")
    callback_every: int = Field(default=0, ge=0, le=600, description="seconds between offers to be called back "
                                "(press 1, the caller keeps their place); 0: never offered")
    agent_timeout: int = Field(default=15, ge=3, le=120, description="seconds an agent's phone rings before the "
                               "call passes on")
    wrap_up: int = Field(default=10, ge=0, le=600, description="seconds after a call before an agent gets the next")
    auto_pause_after: int = Field(default=3, ge=0, le=50, description="missed calls in a row that pause an agent; "
                                  "0: never")
    service_level: int = Field(default=20, ge=1, le=600, description="seconds within which a call counts as "
                               "answered on time (service level)")
    priority: int = Field(default=0, ge=0, le=9, description="priority of a caller of this queue by default")
    did_priorities: dict[str, Annotated[int, Field(ge=0, le=9)]] = Field(
        default_factory=dict, description="DID number -> priority of the callers who dialled it")
    vip_callers: list[str] = Field(default_factory=list, max_length=500, description="caller numbers served first")
    vip_priority: int = Field(default=9, ge=0, le=9)
    supervisors: list[str] = Field(default_factory=list, max_length=50, description="extensions that may "
                                   "monitor, whisper to and barge in on this queue's agents")
    web_callback: bool = Field(default=False, description="the public call-back page takes requests for this queue")
    web_callback_numbers: list[str] = Field(
        default_factory=list, max_length=50, description="number patterns a visitor may be called back on "
        "(X any digit, N 2-9, Z 1-9, [1-5] a class, e.g. 0ZXXXXXXXX); none: no number is accepted")
    web_callback_pending: int = Field(default=10, ge=1, le=200, description="web call-back requests waiting at "
                                      "most; more are refused")
    chat: bool = Field(default=False, description="the public page takes text chats for this queue; its agents "
                       "answer them from their agent page (services/pbx/acd/chat.py)")

    @field_validator("web_callback_numbers")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"\+?([0-9XNZ]|\[[0-9-]{1,20}\]){1,32}", value):
                raise ValueError(f"{value!r} is not a number pattern (digits, X, N, Z, [1-5])")
        return values

    @field_validator("vip_callers", "supervisors")
    @classmethod
    def _numbers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(NUMBER, value):
                raise ValueError(f"{value!r} is not a phone number")
        return values

    def member(self, agent: str) -> QueueMember | None:
        return next((m for m in self.members if m.agent == agent), None)


class Tariff(Section):
    """What an outgoing trunk call costs (services/pbx/accounting.py): the longest matching prefix wins."""
    prefix: str = Field(pattern=r"^[0-9*#+]{0,32}$", description="prefix of the number as dialled; empty: "
                        "every number")
    name: SafeText = Field(default="", max_length=60, description="e.g. Mobiles, International")
    trunk: str = Field(default="", pattern=r"^([A-Za-z0-9_-]{1,32})?$", description="trunk it applies to; "
                       "empty: all trunks (a trunk's own tariff wins at the same prefix)")
    per_minute: float = Field(default=0.0, ge=0, le=1000, description="price of a minute")
    setup: float = Field(default=0.0, ge=0, le=1000, description="charge of every answered call")
    increment: int = Field(default=60, ge=1, le=3600, description="seconds charged at a time (rounded up)")


class Accounting(Section):
    """Call accounting: tariffs, the box's currency, monthly budgets per user."""
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, e.g. EUR, TWD")
    tariffs: list[Tariff] = Field(default_factory=list, max_length=2000)
    budgets: dict[str, Annotated[float, Field(gt=0, le=1e7)]] = Field(
        default_factory=dict, description="user login -> monthly budget of outgoing calls; the admin gets a "
        "mail when a user passes it (once a month)")

    @field_validator("tariffs")
    @classmethod
    def _distinct(cls, tariffs: list[Tariff]) -> list[Tariff]:
        seen = set()
        for t in tariffs:
            if (t.prefix, t.trunk) in seen:
                raise ValueError(f"two tariffs for prefix {t.prefix or '(any)'!r} on "
                                 f"{'trunk ' + t.trunk if t.trunk else 'all trunks'}")
            seen.add((t.prefix, t.trunk))
        return tariffs


class RecordingSettings(Section):
    """Call recording (services/pbx/recording): which calls are recorded automatically, the notice, limits."""
    extensions: list[str] = Field(default_factory=list, description="calls of these extensions are recorded")
    groups: list[str] = Field(default_factory=list, description="calls to these ring groups are recorded")
    trunks: list[str] = Field(default_factory=list, description="calls on these trunks are recorded")
    on_demand: bool = Field(default=True, description="the record_call feature code starts and stops a "
                            "recording during a call")
    notice: Literal["none", "tone", "prompt"] = Field(default="tone", description="what both parties hear when "
                                                      "a recording starts: a beep, a spoken notice, or nothing")
    retention_days: int = Field(default=90, ge=1, le=3650, description="recordings older than this are deleted")
    max_disk_mb: int = Field(default=2000, ge=10, le=1000000, description="megabytes all recordings may take; "
                             "beyond it the oldest are deleted")

    @field_validator("extensions", "groups")
    @classmethod
    def _numbers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[0-9]{2,6}", value):
                raise ValueError(f"{value!r} is not an extension or group number")
        return sorted(set(values))


class SecretaryPair(Section):
    """A manager whose calls ring the secretary first (services/pbx/secretary.py)."""
    manager: str = Field(pattern=r"^[0-9]{2,6}$")
    secretary: str = Field(pattern=r"^[0-9]{2,6}$")
    screening: bool = Field(default=True, description="calls to the manager ring the secretary (the manager "
                            "switches this by the screening feature code)")
    bypass: list[str] = Field(default_factory=list, max_length=200, description="caller numbers and extensions "
                              "that ring the manager directly")

    @field_validator("bypass")
    @classmethod
    def _bypass(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(NUMBER, value):
                raise ValueError(f"{value!r} is not a number")
        return values

    @model_validator(mode="after")
    def _two(self) -> "SecretaryPair":
        if self.manager == self.secretary:
            raise ValueError("a manager cannot be their own secretary")
        return self


class PbxConfig(ServiceConfig):
    sip_port: int = Field(default=5060, ge=1, le=65535)
    lab_sip_port: int = Field(default=5070, ge=0, le=65535, description="0: pick a free port (tests)")
    tcp: bool = True
    sip_receive_buffer: int = Field(
        default=2 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
        description="bytes of kernel buffer for the SIP UDP socket: holds bursts of requests while the PBX is "
        "busy (above net.core.rmem_max the box needs CAP_NET_ADMIN, else the kernel caps it and it is logged)")
    websocket: bool = Field(default=True, description="serve SIP over secure WebSocket (RFC 7118) for the "
                            "browser phone of the staff pages, on ws_port with the box's HTTPS certificate")
    ws_port: int = Field(default=8089, ge=1, le=65535, description="port of SIP over WebSocket (path /ws)")
    lab_ws_port: int = Field(default=0, ge=0, le=65535, description="lab: port of SIP over WebSocket; 0: any free "
                             "port (the web phone page asks the PBX which)")
    public_web: bool = Field(default=False, description="serve the public call-centre pages (web call-back and "
                             "chat, /public/...) and nothing else on public_web_port, with the box's HTTPS "
                             "certificate, open from the WAN (from the LAN they are on the web admin's port)")
    public_web_port: int = Field(default=8443, ge=1, le=65535, description="port of the public call-centre pages")
    lab_public_web_port: int = Field(default=9443, ge=1024, le=65535, description="lab: that port, on loopback")
    ws_origins: list[str] = Field(
        default_factory=list, max_length=20, description="web page origins allowed to open the SIP WebSocket "
        "besides the box's own web admin (https://name:port), e.g. a name the box is published under")
    webrtc: bool = Field(default=True, description="bridge browser phones' WebRTC media (ICE-lite, DTLS-SRTP) "
                         "to plain RTP (services/pbx/webrtc)")
    webrtc_port_min: int = Field(default=11000, ge=1024, le=65534, description="UDP ports browsers send media to")
    webrtc_port_max: int = Field(default=11999, ge=1025, le=65535)
    lab_webrtc_port_min: int = Field(default=31000, ge=1024, le=65534)
    lab_webrtc_port_max: int = Field(default=31999, ge=1025, le=65535)
    rtp_port_min: int = Field(default=10000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=10999, ge=1025, le=65535)
    # lab: below Linux's ephemeral range (32768+) so outgoing sockets of other programs never take them
    lab_rtp_port_min: int = Field(default=30000, ge=1024, le=65534)
    lab_rtp_port_max: int = Field(default=30999, ge=1025, le=65535)
    rtp_timeout: int = Field(default=60, ge=0, le=3600, description="seconds a party of a connected call (not "
                             "on hold) may send no media before both sides are hung up; 0: never")
    session_expires: int = Field(default=1800, ge=0, le=86400, description="RFC 4028 session interval (seconds) "
                                 "asked of and refreshed toward the parties; 0: no session timer")
    min_se: int = Field(default=90, ge=90, le=86400, description="smallest session interval accepted (Min-SE)")
    max_call_duration: dict[PermissionClass, Annotated[int, Field(ge=0, le=604800)]] = Field(
        default_factory=dict, description="permission class -> seconds a connected call of a caller of that "
        "class may last before both sides are hung up; a class not listed (or 0): no limit")
    application_numbers: dict[str, str] = Field(
        default_factory=dict, description='dialled number -> application destination, e.g. {"*43": "app:echo"}')
    public_address: ipaddress.IPv4Address | None = Field(
        default=None, description="behind another router: the address carriers, remote phones and browser phones "
        "reach us at (forward the SIP port, the RTP range and the WebRTC and TURN ports to this box there; coturn "
        "announces it as its external-ip); empty: the box's own address")
    realm: SafeText = Field(default="", max_length=100, description="digest realm; empty: the LAN domain")
    user_agent: SafeText = Field(default="", max_length=60, description="Server and User-Agent value; empty: none "
                                 "(naming the product helps attackers fingerprint the box)")
    digest_algorithms: list[Literal["SHA-256", "MD5"]] = Field(
        default_factory=lambda: ["SHA-256", "MD5"], min_length=1,
        description="challenges offered and answers accepted, preferred first")
    digest_md5_only_agents: list[str] = Field(
        default_factory=lambda: [r"^baresip v([0-2]|3\.([0-9]|1[01]))\."], max_length=20,
        description="User-Agent patterns (regular expressions) of phones that fail on any challenge but MD5 "
        "(libre before 3.12: baresip 3.11 and older): they are offered MD5 alone when it is allowed")
    min_expires: int = Field(default=60, ge=10, le=3600)
    max_expires: int = Field(default=3600, ge=60, le=86400)
    max_contacts: int = Field(default=10, ge=1, le=50)
    codecs: list[Literal["PCMU", "PCMA", "G722"]] = Field(default_factory=lambda: ["G722", "PCMU", "PCMA"])
    country_code: str = Field(default="33", pattern=r"^[0-9]{1,4}$")
    national_prefix: str = Field(default="0", pattern=r"^[0-9]{0,3}$")
    international_prefix: str = Field(default="00", pattern=r"^[0-9]{1,4}$")
    local_prefixes: list[str] = Field(default_factory=list, description="national numbers that count as local")
    emergency_numbers: list[str] = Field(default_factory=lambda: ["112", "15", "17", "18", "114", "115", "119"])
    default_permission: PermissionClass = "national"
    permissions: dict[str, PermissionClass] = Field(default_factory=dict, description="user login -> class")
    extensions: dict[str, ExtensionSettings] = Field(default_factory=dict, description="extension -> settings")
    groups: list[RingGroup] = Field(default_factory=list)
    trunks: list[Trunk] = Field(default_factory=list)
    routes: list[OutboundRoute] = Field(default_factory=list)
    dids: list[Did] = Field(default_factory=list)
    abuse: AbuseLimits = AbuseLimits()
    prompt_language: Literal["en", "fr", "zh-TW"] = Field(
        default="en", description="language of the box's voice prompts for callers whose user has none of these")
    voicemail: VoicemailSettings = VoicemailSettings()
    feature_codes: FeatureCodes = FeatureCodes()
    park: ParkSettings = ParkSettings()
    paging_groups: list[PagingGroup] = Field(default_factory=list, max_length=50)
    recording: RecordingSettings = RecordingSettings()
    secretaries: list[SecretaryPair] = Field(default_factory=list, max_length=500,
                                             description="manager / secretary pairs")
    moh_classes: list[MohClass] = Field(default_factory=lambda: [MohClass(name="default")], max_length=100,
                                        description='music on hold classes; "default" always exists')
    queues: list[CallQueue] = Field(default_factory=list, max_length=100, description="call centre queues")
    conference_rooms: list[ConferenceRoom] = Field(default_factory=list, max_length=100,
                                                   description="meet-me conference rooms")
    accounting: Accounting = Accounting()
    operator: str | None = Field(default=None, pattern=r"^[0-9]{2,6}$", description="the operator's extension "
                                 "(attendants, personal assistants); empty: the voicemail operator")
    time_profiles: list[TimeProfile] = Field(default_factory=list, max_length=50)
    attendants: list[Attendant] = Field(default_factory=list, max_length=50)

    @field_validator("digest_md5_only_agents")
    @classmethod
    def _patterns(cls, values: list[str]) -> list[str]:
        for value in values:
            if not 0 < len(value) <= 200:
                raise ValueError("a User-Agent pattern has 1 to 200 characters")
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return values

    @field_validator("moh_classes")
    @classmethod
    def _moh(cls, classes: list[MohClass]) -> list[MohClass]:
        names = [c.name for c in classes]
        if len(set(names)) != len(names):
            raise ValueError("music on hold class names must be unique")
        return classes if "default" in names else [MohClass(name="default"), *classes]

    @field_validator("ws_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?", value):
                raise ValueError(f"{value!r} is not an origin such as https://phone.example.com:8443")
        return [v.lower() for v in values]

    @field_validator("emergency_numbers", "local_prefixes")
    @classmethod
    def _digits(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[0-9]{1,16}", value):
                raise ValueError(f"{value!r} is not a number")
        return values

    @model_validator(mode="after")
    def _coherent(self) -> "PbxConfig":
        if self.rtp_port_max - self.rtp_port_min < 3 or self.lab_rtp_port_max - self.lab_rtp_port_min < 3:
            raise ValueError("the RTP port range needs at least 4 ports")
        if self.webrtc_port_max < self.webrtc_port_min or self.lab_webrtc_port_max < self.lab_webrtc_port_min:
            raise ValueError("the WebRTC port range ends before it starts")
        trunk_names = [t.name for t in self.trunks]
        if len(set(trunk_names)) != len(trunk_names):
            raise ValueError("trunk names must be unique")
        for route in self.routes:
            for name in route.trunks:
                if name not in trunk_names:
                    raise ValueError(f"route {route.name!r} uses unknown trunk {name!r}")
        numbers = [g.number for g in self.groups]
        if len(set(numbers)) != len(numbers):
            raise ValueError("ring group numbers must be unique")
        dids = [d.number for d in self.dids]
        if len(set(dids)) != len(dids):
            raise ValueError("DID numbers must be unique")
        for number, dest in self.application_numbers.items():
            if not re.fullmatch(NUMBER, number) or not re.fullmatch(APPLICATION, dest):
                raise ValueError(f"application number {number!r} -> {dest!r}: a number and an application "
                                 "destination (app:echo, voicemail:201...) are needed")
        for number in self.feature_codes.destinations():
            if number in self.application_numbers:
                raise ValueError(f"feature code {number} is also an application number")
        paging = [p.number for p in self.paging_groups]
        own = numbers + paging  # park slots yield to ring groups and extensions (application_for)
        if len(set(own)) != len(own) or set(paging) & set(self.park.numbers()):
            raise ValueError("ring groups, park slots and paging groups need numbers of their own")
        rooms = [r.number for r in self.conference_rooms]
        if len(set(rooms)) != len(rooms) or len({r.name for r in self.conference_rooms}) != len(rooms):
            raise ValueError("conference room numbers and names must be unique")
        for number in rooms:
            if number in self.application_numbers or number in self.feature_codes.destinations() or number in numbers:
                raise ValueError(f"conference room {number} is also an application number, feature code or group")
        for name in self.recording.trunks:
            if name not in trunk_names:
                raise ValueError(f"calls on trunk {name!r} are to be recorded, but there is no such trunk")
        for number in self.recording.groups:
            if number not in numbers:
                raise ValueError(f"calls to ring group {number} are to be recorded, but there is no such group")
        managers = [p.manager for p in self.secretaries]
        if len(set(managers)) != len(managers):
            raise ValueError("a manager has one secretary: each manager extension once")
        for ext in self.extensions:
            if not re.fullmatch(r"[0-9]{2,6}", ext):
                raise ValueError(f"extension settings key {ext!r} is not an extension number")
        for what in ("name", "number"):
            values = [getattr(q, what) for q in self.queues]
            if len(set(values)) != len(values):
                raise ValueError(f"call queue {what}s must be unique")
        problems = attendant_problems(self)
        if problems:
            raise field_errors("PbxConfig", problems)
        return self

    def attendant(self, name: str) -> Attendant | None:
        return next((a for a in self.attendants if a.name == name), None)

    def time_profile(self, name: str) -> TimeProfile | None:
        return next((p for p in self.time_profiles if p.name == name), None)

    def operator_extension(self) -> str | None:
        return self.operator or self.voicemail.operator

    def application_for(self, number: str, extensions: Collection[str] = ()) -> str | None:
        """The application destination a dialled number names (application numbers, feature codes, call
        queues, conference rooms, then park slots: a slot that is also one of `extensions` or a ring group
        stays theirs, as it was before park existed; the configuration check names the clash)."""
        found = (self.application_numbers.get(number) or self.feature_codes.destinations().get(number)
                 or next((f"queue:{q.name}" for q in self.queues if q.number == number), None)
                 or next((f"conference:{r.name}" for r in self.conference_rooms if r.number == number), None))
        if found:
            return found
        codes = self.feature_codes
        if number.startswith(codes.forward_on) and number[len(codes.forward_on):].isdigit():
            return "app:forward-on"  # *72 with the number to forward to
        for mode in ("monitor", "whisper", "barge"):  # *55 with the agent's extension (acd/monitor.py)
            code = getattr(codes, f"supervisor_{mode}")
            if number.startswith(code) and number[len(code):].isdigit():
                return f"app:supervisor-{mode}"
        if number in self.park.numbers() and number not in extensions \
                and not any(g.number == number for g in self.groups):
            return f"app:park-{number}"
        if any(p.number == number for p in self.paging_groups):
            return f"app:page-{number}"
        return None

    def room(self, name: str) -> ConferenceRoom | None:
        return next((r for r in self.conference_rooms if r.name == name), None)


def attendant_problems(cfg: PbxConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Field errors of the attendants: unknown profiles, menus, groups and attendants, greeting numbers
    used twice, and loops between attendants (an attendant reaching itself through others' options or
    fallbacks: within one attendant, use its menus)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names = [p.name for p in cfg.time_profiles]
    for i, name in enumerate(names):
        if names.index(name) != i:
            problems.append((("time_profiles", i, "name"), f"time profile {name!r} exists already"))
    attendants = {a.name: a for a in cfg.attendants}
    groups = {g.number for g in cfg.groups}
    numbers: dict[str, str] = {}
    links: dict[str, set[str]] = {}
    for i, att in enumerate(cfg.attendants):
        where = ("attendants", i)
        if list(attendants).index(att.name) != i:
            problems.append(((*where, "name"), f"attendant {att.name!r} exists already"))
        if att.profile and att.profile not in names:
            problems.append(((*where, "profile"), f"there is no time profile {att.profile!r}"))
        for state, menu in att.entry.items():
            if att.menu(menu) is None:
                problems.append(((*where, "entry", state), f"there is no menu {menu!r} in this attendant"))
        reached = links.setdefault(att.name, set())
        if att.fallback.startswith("attendant:"):
            reached.add(att.fallback.partition(":")[2])
        for j, menu in enumerate(att.menus):
            if menu.number:
                if menu.number in numbers:
                    problems.append(((*where, "menus", j, "number"), f"greeting number {menu.number} is used by "
                                     f"{numbers[menu.number]} already"))
                numbers.setdefault(menu.number, f"{att.name}/{menu.name}")
            for k, option in enumerate(menu.options):
                at = (*where, "menus", j, "options", k, "target")
                if option.action == "menu" and att.menu(option.target) is None:
                    problems.append((at, f"there is no menu {option.target!r} in this attendant"))
                elif option.action == "group" and option.target not in groups:
                    problems.append((at, f"there is no ring group {option.target}"))
                elif option.action == "attendant":
                    if option.target not in attendants:
                        problems.append((at, f"there is no attendant {option.target!r}"))
                    reached.add(option.target)
    for att in cfg.attendants:
        for name in list(links.get(att.name, ())):
            if name in attendants and att.name in _reachable(links, name, att.name):
                problems.append((("attendants", list(attendants).index(att.name)),
                                 f"attendant {att.name!r} and {name!r} lead to each other: a caller could go round "
                                 "in a loop (use menus within one attendant)"))
                break
    return problems


def _reachable(links: dict[str, set[str]], start: str, goal: str) -> set[str]:
    """The attendants reached from `start`, as soon as `goal` is among them (bounded by the graph)."""
    seen, todo = {start}, [start]
    while todo and goal not in seen:
        for nxt in links.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
