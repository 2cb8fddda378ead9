"""JSON schemas of the API's bodies and answers, for its OpenAPI document."""

from __future__ import annotations

from typing import Any

from chatd.crypto.ciphers import ALGORITHMS
from chatd.crypto.kdf import COSTS
from chatd.domain.scopes import Scope

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
NUM: Schema = {"type": "number"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}


def obj(*, optional: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An object with these properties, all required but ``optional`` ones."""
    required = [name for name in properties if name not in optional]
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


ERROR = obj(error={**obj(code=STR, message=STR), "additionalProperties": True})
# rooms counts them; room_list names them (by name, with their ids).
# bot and scopes: what the account is, and what the token asking may do.
ME = obj(name=STR, admin=BOOL, rooms=INT, room_list=array(obj(id=INT, name=STR)),
         notifications=INT,
         dropped={**INT, "description": "how many older notifications were dropped past "
                  "limits.max_notifications and not yet told by the newest page of a "
                  "listing (GET /api/v1/notifications, /notifications), which takes the "
                  "count; read here, it is left for that listing"},
         bot={**BOOL, "description": "whether the account is a bot account (/bot create)"},
         scopes={**array({"type": "string", "enum": [scope.value for scope in Scope]}),
                 "description": "the scopes the token of this request grants"})
ROOM = obj(id=INT, name=STR, mode=STR, members=INT, topic=STR, e2e=BOOL, role=STR)


def page(**properties: Schema) -> Schema:
    """A page of a list: ``properties``, and where the page stands (its number from 1,
    how many pages there are, how many items in all), as the line protocol says it."""
    schema = obj(page=INT, pages=INT, total=INT)
    schema["properties"] = {**properties, **schema["properties"]}
    schema["required"] = [*properties, *schema["required"]]
    return schema


MEMBERS = page(room=STR, members=array(obj(user=STR, role=STR, online=BOOL, bot=BOOL)))
NOTIFICATIONS = page(notifications=array(ANY_OBJECT), dropped={
    **INT, "description": "how many older notifications were dropped past "
    "limits.max_notifications since the newest page was last read (here or with "
    "/notifications) or cleared; told once, by the newest page (0 on the others)"})
# A message record of the line protocol's JSON format (docs/PROTOCOL.md).
MESSAGE: Schema = {"type": "object", "required": ["type", "from", "ts"],
                   "properties": {"type": STR, "room": STR, "from": STR, "text": STR,
                                  "id": INT, "ts": STR, "bot": {
                                      **BOOL, "description": "true when a bot sent it (a "
                                      "bot account, or a webhook); absent otherwise"}},
                   "additionalProperties": True}
HISTORY = obj(room=STR, messages=array(MESSAGE), before=nullable(INT))
POST = obj(text=STR, action=BOOL, optional=("action",))
POSTED = obj(id=INT, room=STR, to=STR, online=BOOL, webhook=INT,
             optional=("room", "to", "online", "webhook"))
FILE = obj(id=INT, name=STR, size=INT, mime=STR, sha256=STR, uploader=STR, preview=STR,
           room_id=INT, time=NUM, download=STR)
CRYPTO = obj(algorithms=array(STR), costs=array(STR), max_input=INT)
_AS: Schema = {"type": "string", "enum": ["string", "file"], "default": "string"}
ENCRYPT = obj(algorithm={"type": "string", "enum": list(ALGORITHMS)},
              cost={"type": "string", "enum": list(COSTS), "default": "medium"},
              password=STR, text=STR, optional=("cost", "as"), **{"as": _AS})
DECRYPT = obj(password=STR, armored=STR, optional=("as",), **{"as": _AS})
# by_token: a script's API token made it (it lives as long as the token); dead: why it posts
# no more (token-revoked, token-expired), null while it lives.
WEBHOOK = obj(id=INT, name=STR, bot=STR, created=NUM, by_token=BOOL, dead=nullable(STR))
NEW_WEBHOOK = obj(id=INT, name=STR, bot=STR, created=NUM, by_token=BOOL, dead=nullable(STR),
                  room=STR, secret=STR, path=STR)
