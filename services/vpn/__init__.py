"""VPN: site-to-site IPsec (strongSwan's charon driven through swanctl) between offices."""
from services.vpn.service import VpnService

SERVICE = VpnService
