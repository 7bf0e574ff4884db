"""Firewall and NAT: an nftables ruleset from zones and rules, loaded atomically, with commit-confirm."""
from services.firewall.service import FirewallService

SERVICE = FirewallService
