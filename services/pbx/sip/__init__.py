"""A small asyncio SIP stack (RFC 3261): messages, transports, transactions."""
