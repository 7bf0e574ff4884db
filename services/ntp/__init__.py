"""Time server: chrony serves the LAN (DHCP option 42 points at it) and follows upstreams on the WAN."""
from services.ntp.service import NtpService

SERVICE = NtpService
