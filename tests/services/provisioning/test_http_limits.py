"""The provisioning HTTP server caps connections: one LAN host holding idle connections gets 503
past its share, and the other hosts (the phones) are still served (fails before the cap: the extra
connection waited like the others and nothing bounded them)."""
import asyncio

from services.provisioning.http import Auth, HttpServer


def test_idle_connections_from_one_host_do_not_lock_out_the_phones():
    async def get(host: str, port: int, source: str) -> bytes:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        writer.write(b"GET /001565123456.cfg HTTP/1.1\r\nHost: box\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return answer

    async def main():
        server = HttpServer(lambda *a: (200, "text/plain", b"config\n"), Auth("none", "", ""))
        server.max_per_source, server.max_clients = 4, 6
        port = await server.open("127.0.0.1", 0)
        idle = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0)) for _ in range(4)]
        await asyncio.sleep(0.1)
        crowded = await get("127.0.0.1", port, "127.0.0.2")
        phone = await get("127.0.0.1", port, "127.0.0.3")
        more = [await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0)) for _ in range(2)]
        await asyncio.sleep(0.1)
        full = await get("127.0.0.1", port, "127.0.0.5")
        for _, writer in idle + more:
            writer.close()
        server.close()
        return crowded, phone, full
    crowded, phone, full = asyncio.run(main())
    assert crowded.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 10" in crowded
    assert phone.startswith(b"HTTP/1.1 200 ") and phone.endswith(b"config\n")
    assert full.startswith(b"HTTP/1.1 503 ")
