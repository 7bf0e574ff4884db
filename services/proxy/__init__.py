"""Web proxy and cache: Squid with access rules per group, block pages, usage statistics."""
from services.proxy.service import ProxyService

SERVICE = ProxyService
