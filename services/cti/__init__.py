"""CTI: a CSTA Phase III XML server (ECMA-269 services, ECMA-323 encoding, ECMA-354 sessions) over TCP
and TLS, for TAPI service providers and business applications. See README.md."""
from services.cti.service import CtiService

SERVICE = CtiService
