"""An MCP client made with the official MCP Python SDK, for credd's tests: over streamable
HTTP to URL with one extra header (its value from the environment, out of `ps`), it
initializes a session (the SDK then holds a GET event stream open), calls the tool `count` and
prints what it returned, then leaves, ending the session with a DELETE.

Usage: MCP_HEADER_VALUE=... mcp_client.py URL HEADER
"""

import os
import sys

import anyio

from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

url, header, value = sys.argv[1], sys.argv[2], os.environ["MCP_HEADER_VALUE"]


async def main() -> None:
    async with create_mcp_http_client(headers={header: value}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                # Long enough for the SDK's GET stream to be opened.
                await anyio.sleep(1)
                result = await session.call_tool("count", {})
                print("".join(getattr(part, "text", "") for part in result.content))


anyio.run(main)
