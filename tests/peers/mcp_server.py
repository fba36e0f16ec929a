"""A remote MCP server for credd's tests, made with the official MCP Python SDK (`mcp` on
PyPI): streamable HTTP on 127.0.0.1, behind the SDK's own Bearer token check.

It takes only tokens its issuer (the test's token command) wrote to the issued file, each
until its expiry: one line `TOKEN EXPIRES_AT_UNIX` per token. Anything else, an expired token
included, gets the SDK's 401. Its one tool, `count`, answers "call N" and appends which
token served each call, and when, to the calls file: one line `N TOKEN UNIX_TIME`.

Usage: mcp_server.py PORT ISSUED_FILE CALLS_FILE
"""

import sys
import time

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

port, issued_file, calls_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class IssuedTokens:
    """The tokens the issuer wrote, each valid until its expiry."""

    async def verify_token(self, token: str) -> AccessToken | None:
        now = time.time()
        with open(issued_file) as issued:
            for line in issued:
                known, _, expires_at = line.strip().partition(" ")
                if known == token and now < int(expires_at):
                    return AccessToken(
                        token=token,
                        client_id="credd-tests",
                        scopes=[],
                        expires_at=int(expires_at),
                    )
        print(f"refused a token ({'expired' if token in open(issued_file).read() else 'unknown'})",
              file=sys.stderr, flush=True)
        return None


server = MCPServer(
    "credd-test",
    token_verifier=IssuedTokens(),
    auth=AuthSettings(
        issuer_url="http://127.0.0.1:9",
        resource_server_url=f"http://127.0.0.1:{port}/mcp",
        # The issued file is the audience check: its tokens are for this server alone.
        validate_token_resource=False,
    ),
)
calls = 0


@server.tool()
def count() -> str:
    """Counts the calls made to it."""
    global calls
    calls += 1
    token = get_access_token()
    with open(calls_file, "a") as out:
        out.write(f"{calls} {token.token if token else '-'} {time.time()}\n")
    return f"call {calls}"


server.run("streamable-http", host="127.0.0.1", port=port)
