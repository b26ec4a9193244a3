"""Who the caller's key is and what its role may do: the console shows the pages and buttons
the role allows. It only reflects: every route enforces its role itself (deps.py)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from admin_api.deps import READ_ROLES, TOKEN_ROLES, WRITE_ROLES, AnyKey
from admin_api.problems import problem_responses
from admin_api.routes import API_V1

router = APIRouter(prefix=API_V1, tags=["keys"])


class Capabilities(BaseModel):
    read: bool = Field(description="List and read agent types, routing, sessions, events.")
    write: bool = Field(description="Create, edit, pause, roll back; edit routing rules.")
    mint_tokens: bool = Field(description="POST /token: join rooms (the console's playground).")


class Me(BaseModel):
    name: str
    role: str
    scopes: list[str]
    can: Capabilities


@router.get("/me", responses=problem_responses(401, 503))
async def whoami(caller: AnyKey) -> Me:
    """The calling key's name, role and scopes (never its secret or digest)."""
    return Me(
        name=caller.name,
        role=str(caller.role),
        scopes=sorted(str(scope) for scope in caller.scopes),
        can=Capabilities(
            read=caller.role in READ_ROLES,
            write=caller.role in WRITE_ROLES,
            mint_tokens=caller.role in TOKEN_ROLES,
        ),
    )
