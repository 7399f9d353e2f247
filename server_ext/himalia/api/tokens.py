"""API ``tokens``."""

from pydantic import Field

from himalia.api.base import APIHandler, PageQuery, operation
from himalia.core.errors import NotFound
from himalia.wire.common import Page
from himalia.wire.identity import CreatedToken, CreateToken, DescribeToken


class ListTokensQuery(PageQuery):
    user: str | None = Field(None, max_length=100, description="Another user's tokens (administrators).")


class TokensHandler(APIHandler):
    route = "/tokens"

    @operation(
        "List my tokens (administrators: everyone's, or one user's).",
        query=ListTokensQuery,
        response=Page[DescribeToken],
    )
    async def get(self, query: ListTokensQuery) -> Page[DescribeToken]:
        return await self.call(
            self.control_plane.tokens.list_tokens, self.caller, query.limit, query.offset, query.user
        )

    @operation(
        "Issue a token; its value is in this response only.",
        body=CreateToken,
        response=CreatedToken,
        status=201,
    )
    async def post(self, spec: CreateToken) -> CreatedToken:
        return await self.call(self.control_plane.tokens.create_token, self.caller, spec)


class TokenHandler(APIHandler):
    route = "/tokens/{token_id}"

    @operation("Revoke a token (its user or administrators).")
    async def delete(self, token_id: str) -> None:
        # isdigit() alone admits digits int() rejects, such as '¹' (a 500, found by tests/test_fuzz.py).
        if not (token_id.isascii() and token_id.isdigit()) or len(token_id) > 18:
            raise NotFound(f"There is no token {token_id}.")
        await self.call(self.control_plane.tokens.revoke_token, self.caller, int(token_id))


handlers = [TokensHandler, TokenHandler]
