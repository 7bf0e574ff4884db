"""The directory of people. One user feeds their extension, voicemail box, mailbox and VPN account."""
from __future__ import annotations

import secrets
import string
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.text import SafeText

_hasher = PasswordHasher()
LOGIN_PATTERN = r"^[a-z][a-z0-9._-]{1,31}$"
EXTENSION_PATTERN = r"^[0-9]{2,6}$"
EMAIL_PATTERN = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
LANGUAGES = ("en", "fr", "zh_TW")  # the web admin's catalogues (webadmin/translations)
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_secret(length: int = 20) -> str:
    """A device secret (SIP, VPN): random, letters and digits only so every phone can type it."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: str = Field(pattern=LOGIN_PATTERN, description="lower case, used for web, mail and VPN")
    full_name: SafeText = Field(min_length=1, max_length=100)
    extension: str | None = Field(default=None, pattern=EXTENSION_PATTERN)
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN)
    department: SafeText = Field(default="", max_length=60, description="for call accounting reports")
    role: Literal["admin", "readonly", "staff"] = Field(
        default="staff", description="readonly: an admin who sees every admin page and changes nothing")
    language: Literal["en", "fr", "zh_TW"] = "en"
    enabled: bool = True
    password_hash: str | None = Field(default=None, description="argon2 hash of the web/mail password")
    sip_secret: str = Field(default_factory=new_secret, min_length=8, description="phone/softphone secret")
    proxy_password_hash: str | None = Field(default=None, description="argon2 hash of the web proxy password")
    voicemail_pin_hash: str | None = None
    vpn_enabled: bool = False
    totp_secret: str | None = Field(default=None, pattern=r"^[A-Z2-7]{32}$",
                                    description="base32 TOTP key of the web sign-in's second step (None: off)")
    recovery_codes_hash: list[str] = Field(default_factory=list, max_length=10,
                                           description="argon2 hashes of the unused two-factor recovery codes")

    @field_validator("full_name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("full name must not be empty")
        return value

    def check_password(self, password: str) -> bool:
        return self.enabled and verify_password(self.password_hash, password)

    def check_proxy_password(self, password: str) -> bool:
        return self.enabled and verify_password(self.proxy_password_hash, password)

    def mail_address(self, mail_domain: str) -> str:
        return self.email or f"{self.login}@{mail_domain}"
